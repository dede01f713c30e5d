"""``multipart/form-data`` bodies (RFC 7578), encoded by toolbridge for every multipart operation.

httpx2 writes multipart only when a file is given, and a body without one must still be multipart. Part
contents are an agent's arguments, so nothing in them may end a part: the boundary is random per request
and checked to occur in no part, and names and filenames are escaped as browsers escape them (WHATWG
HTML, multipart/form-data encoding: ``"`` → ``%22``, CR → ``%0D``, LF → ``%0A``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Part", "encode"]

_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})
_HEADER_BREAKS = str.maketrans({"\r": " ", "\n": " "})


@dataclass(frozen=True, slots=True)
class Part:
    """One part: a field (no filename) or a file; ``content_type`` None sends none (text/plain)."""

    name: str
    content: bytes
    filename: str | None = None
    content_type: str | None = None


def encode(parts: Sequence[Part]) -> tuple[str, bytes]:
    """The body's ``Content-Type`` (with its boundary) and the body."""
    rendered = [_head(part) + part.content for part in parts]
    boundary = _boundary(rendered)
    delimiter = b"--" + boundary
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in rendered) + delimiter + b"--\r\n"
    return f"multipart/form-data; boundary={boundary.decode('ascii')}", body


def _boundary(rendered: Sequence[bytes]) -> bytes:
    """128 random bits, drawn again in the (unlikely, never chosen by the caller) case a part holds them."""
    while True:
        boundary = f"toolbridge-{secrets.token_hex(16)}".encode("ascii")
        if not any(boundary in part for part in rendered):
            return boundary


def _head(part: Part) -> bytes:
    head = f'Content-Disposition: form-data; name="{part.name.translate(_ESCAPES)}"'
    if part.filename is not None:
        head += f'; filename="{part.filename.translate(_ESCAPES)}"'
    if part.content_type is not None:  # from the document: a line break there would start a header
        head += f"\r\nContent-Type: {part.content_type.translate(_HEADER_BREAKS)}"
    return head.encode() + b"\r\n\r\n"
