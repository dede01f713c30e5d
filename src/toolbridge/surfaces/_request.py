"""What every surface reads from a request the same way: the API key it presents, and its body under a
size limit (refused with 413 from the declared length before reading, or as soon as the count passes it).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping

from starlette.datastructures import Headers
from starlette.types import Scope

from toolbridge.errors import PayloadTooLarge

__all__ = ["RequestHeaders", "api_key", "check_size", "declared_length", "presents_key", "read_body"]


class RequestHeaders(Headers):
    """Starlette's read-only ``Headers`` whose look-ups (``[]``, ``get``, ``in``) go to a dict of each
    name's first value, built once: Starlette scans and decodes the whole list on every look-up, and
    the MCP surface makes a dozen per request."""

    def __init__(self, *, scope: Scope) -> None:
        super().__init__(scope=scope)
        self._first = {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(self.raw)}

    def __getitem__(self, key: str) -> str:
        try:
            return self._first[key.lower()]
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._first

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._first.get(key.lower(), default)


def api_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer <key>``, else from ``X-API-Key`` (None: no key presented)."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def presents_key(headers: Mapping[str, str]) -> bool:
    """Whether the request carries a credential at all (usable or not)."""
    return "authorization" in headers or "x-api-key" in headers


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` the sender declared, when it is a number."""
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


async def read_body(
    chunks: AsyncIterable[bytes], *, limit: int, declared: int | None = None, what: str = "the request body"
) -> bytes:
    """The whole body, refused with :class:`PayloadTooLarge` when it is (or is declared) over ``limit``."""
    if declared is not None:
        check_size(declared, limit=limit, what=what)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        check_size(size, limit=limit, what=what)
        parts.append(chunk)
    return b"".join(parts)


def check_size(size: int, *, limit: int, what: str = "the request body") -> None:
    """Refuse a body of ``size`` bytes (declared, or counted so far) over ``limit``, as :func:`read_body`."""
    if size > limit:
        raise PayloadTooLarge(what, size=size, limit=limit)
