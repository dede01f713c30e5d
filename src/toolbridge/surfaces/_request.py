"""What every surface reads from a request the same way: the API key it presents, and its body under a
size limit (refused with 413 from the declared length before reading, or as soon as the count passes it).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping

from toolbridge.errors import PayloadTooLarge

__all__ = ["api_key", "declared_length", "presents_key", "read_body"]


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
    if declared is not None and declared > limit:
        raise PayloadTooLarge(what, size=declared, limit=limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(what, size=size, limit=limit)
        parts.append(chunk)
    return b"".join(parts)
