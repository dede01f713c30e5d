"""``tools/list`` pages: a cursor is the (encoded) name of the last tool of the page before.

The other lists (``prompts/list``, ``resources/list``, ``resources/templates/list``) come in one page:
no cursor of theirs was ever given, so any cursor is refused as an invalid one is for ``tools/list``."""

from __future__ import annotations

import base64
import binascii
import bisect
from typing import TYPE_CHECKING

from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, ProtocolError

if TYPE_CHECKING:
    from toolbridge import Tool

__all__ = ["one_page", "tools_page"]

_PREFIX = "after:"


def tools_page(tools: list[Tool], cursor: str | None, size: int) -> tuple[list[Tool], str | None]:
    """The page of ``tools`` (sorted by name) that ``cursor`` points at, and the next page's cursor."""
    start = 0 if cursor is None else bisect.bisect_right([t.name for t in tools], _after(cursor))
    page = tools[start : start + size]
    more = start + size < len(tools)
    return page, _cursor(page[-1].name) if more and page else None


def _cursor(name: str) -> str:
    return base64.urlsafe_b64encode((_PREFIX + name).encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_PREFIX):
        raise ProtocolError(
            INVALID_PARAMS,
            f"tools/list: {cursor[:80]!r} is not a cursor this server gave; "
            "list again without a cursor, then pass each nextCursor as it comes",
        )
    return text[len(_PREFIX) :]


def one_page(method: str, cursor: str | None) -> None:
    """Refuse a cursor sent to a list that comes in one page (``method`` gives no ``nextCursor``)."""
    if cursor is not None:
        raise ProtocolError(
            INVALID_PARAMS,
            f"{method}: {cursor[:80]!r} is not a cursor this server gave; "
            "list again without a cursor (this list comes in one page, without a nextCursor)",
        )
