"""``tools/list`` in pages: every tool exactly once, by ``nextCursor``, in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .conftest import Served, make_hub, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def paged() -> AsyncIterator[Served]:
    async with serve(make_hub(), tools_page_size=2) as served:
        yield served


async def listing(served: Served, era: str, cursor: str | None) -> dict[str, object]:
    params = {"cursor": cursor} if cursor is not None else {}
    if era == "modern":
        response = await served.modern("tools/list", params)
    else:
        response = await served.legacy(await served.initialize(), "tools/list", params)
    body = response.json()
    return body.get("result") or body


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_pages_cover_every_tool_once(paged: Served, era: str) -> None:
    names: list[str] = []
    cursor = None
    for _ in range(10):
        page = await listing(paged, era, cursor)
        assert len(page["tools"]) <= 2  # type: ignore[arg-type]
        names += [t["name"] for t in page["tools"]]  # type: ignore[attr-defined]
        cursor = page.get("nextCursor")  # type: ignore[assignment]
        if cursor is None:
            break
    assert names == sorted(t.name for t in paged.hub.catalog)  # all five, in order, none twice


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_a_cursor_we_did_not_give_is_refused(paged: Served, era: str) -> None:
    answer = await listing(paged, era, "bm9wZQ")
    assert answer["error"]["code"] == -32602  # type: ignore[index]
    assert "not a cursor this server gave" in answer["error"]["message"]  # type: ignore[index]
