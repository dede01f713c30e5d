"""Following pages: RFC 8288 ``Link: rel=next``, next-URL fields, cursor / token fields, offset and page.

Detection looks at the first response; where it cannot tell, the connector's configuration names the
cursor field and the parameter it goes into. Pages are merged by extending the response's item list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin

from toolbridge.connectors.openapi._model import Operation
from toolbridge.connectors.openapi._request import Draft
from toolbridge.connectors.openapi._response import Page, decode
from toolbridge.connectors.openapi._serialize import encode, scalar

__all__ = ["Pager", "Pagination"]

_URL_FIELDS = (
    "next_page_uri",
    "next_page_url",
    "next_url",
    "next",
    "links.next",
    "_links.next.href",
    "paging.next",
)
_CURSOR_FIELDS = (
    "next_cursor",
    "nextCursor",
    "response_metadata.next_cursor",
    "meta.next_cursor",
    "next_page_token",
    "nextPageToken",
    "next_token",
    "nextToken",
)
_CURSOR_PARAMS = ("cursor", "page_token", "pageToken", "next_token", "nextToken", "starting_after", "after")

Fetch = Callable[[Draft], Awaitable[Page]]


@dataclass(frozen=True, slots=True)
class Pagination:
    """Declared pagination: which response field holds the cursor and which parameter takes it."""

    cursor_field: str | None = None
    cursor_param: str | None = None


class Pager:
    def __init__(self, max_pages: int, declared: Pagination | None = None) -> None:
        self.max_pages = max_pages
        self.declared = declared or Pagination()

    @property
    def enabled(self) -> bool:
        return self.max_pages > 1

    async def follow(
        self,
        page: Page,
        result: Any,
        draft: Draft,
        operation: Operation,
        fetch: Fetch,
        limit: int | None = None,
    ) -> Any:
        """``result`` extended with up to ``limit - 1`` further pages (``limit`` ≤ ``max_pages``)."""
        pages, most = 1, min(limit or self.max_pages, self.max_pages)
        while pages < most:
            following = self._next(page, result if pages == 1 else decode(page), draft, operation)
            if following is None:
                break
            draft = following
            page = await fetch(draft)
            result = _merge(result, decode(page))
            pages += 1
        if pages > 1 and isinstance(result, dict):
            result["toolbridge_pages"] = pages
        return result

    def _next(self, page: Page, body: Any, draft: Draft, operation: Operation) -> Draft | None:
        link = page.links.get("next", {}).get("url")
        if link:
            return _goto(draft, urljoin(page.url, link))
        if not isinstance(body, dict):
            return None
        return (
            self._by_cursor(body, draft, operation)
            or _by_url(body, draft, page)
            or _by_offset(body, draft, operation)
        )

    def _by_cursor(self, body: Mapping[str, Any], draft: Draft, operation: Operation) -> Draft | None:
        fields = (self.declared.cursor_field,) if self.declared.cursor_field else _CURSOR_FIELDS
        cursor = next((v for f in fields if (v := _dig(body, f)) not in (None, "")), None)
        if cursor is None and body.get("has_more") is True and body.get("last_id"):
            cursor = body["last_id"]
        if cursor is None or not isinstance(cursor, str | int):
            return None
        declared = operation_params(operation)
        names = (self.declared.cursor_param,) if self.declared.cursor_param else _CURSOR_PARAMS
        param = next((n for n in names if n in declared), None)
        return _with_query(draft, param, scalar(cursor)) if param else None


def operation_params(operation: Operation) -> set[str]:
    return {p.name for p in operation.parameters if p.location == "query"}


def _by_url(body: Mapping[str, Any], draft: Draft, page: Page) -> Draft | None:
    for field in _URL_FIELDS:
        value = _dig(body, field)
        if isinstance(value, str) and (value.startswith(("http://", "https://", "/"))):
            return _goto(draft, urljoin(page.url, value))
    return None


def _by_offset(body: Mapping[str, Any], draft: Draft, operation: Operation) -> Draft | None:
    params = operation_params(operation)
    if body.get("more") is True and "offset" in params:
        offset, limit = body.get("offset", 0), body.get("limit")
        if isinstance(offset, int) and isinstance(limit, int) and limit > 0:
            return _with_query(draft, "offset", str(offset + limit))
    page, total = body.get("page"), body.get("total_pages") or body.get("pages")
    if "page" in params and isinstance(page, int) and isinstance(total, int) and page < total:
        return _with_query(draft, "page", str(page + 1))
    return None


def _goto(draft: Draft, url: str) -> Draft:
    return replace(draft, method="GET", url=url, query=[], content=None)


def _with_query(draft: Draft, name: str, value: str) -> Draft:
    key = encode(name) + "="
    kept = [q for q in draft.query if not q.startswith(key)]
    return replace(draft, query=[*kept, key + encode(value)])


def _dig(body: Mapping[str, Any], path: str) -> Any:
    node: Any = body
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _merge(first: Any, more: Any) -> Any:
    if isinstance(first, list) and isinstance(more, list):
        return [*first, *more]
    key = _items_key(first)
    if key is None or not isinstance(more, dict) or not isinstance(more.get(key), list):
        return first
    return {**first, key: [*first[key], *more[key]]}


def _items_key(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    lists = [(len(v), k) for k, v in body.items() if isinstance(v, list)]
    return max(lists)[1] if lists else None
