"""``tools/list`` in pages: every tool exactly once, by ``nextCursor``, in both protocol eras; the one-page
lists (prompts, resources, templates) refuse a cursor as tools/list refuses one it did not give."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from toolbridge.connectors.mcp import McpConnector, StdioServer

from .conftest import Served, make_hub, serve

pytestmark = pytest.mark.anyio


@pytest.fixture
async def paged() -> AsyncIterator[Served]:
    async with serve(make_hub(), tools_page_size=2) as served:
        yield served


@pytest.fixture
async def federated() -> AsyncIterator[Served]:
    """A hub federating fidelity_server.py (a prompt, a resource and a template) over stdio."""
    hub = make_hub()
    server = StdioServer(sys.executable, (str(Path(__file__).with_name("fidelity_server.py")),))
    hub.add_connector(McpConnector("fid", server))
    async with serve(hub) as served:
        yield served


async def listing(
    served: Served, era: str, cursor: str | None, method: str = "tools/list"
) -> dict[str, object]:
    params = {"cursor": cursor} if cursor is not None else {}
    if era == "modern":
        response = await served.modern(method, params)
    else:
        response = await served.legacy(await served.initialize(), method, params)
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


ONE_PAGE = {
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize("method", sorted(ONE_PAGE))
async def test_the_one_page_lists_refuse_a_cursor_too(federated: Served, era: str, method: str) -> None:
    whole = await listing(federated, era, None, method)
    assert whole[ONE_PAGE[method]] and "nextCursor" not in whole  # something listed, in one page
    answer = await listing(federated, era, "bm9wZQ", method)
    assert answer["error"]["code"] == -32602  # type: ignore[index]
    message = answer["error"]["message"]  # type: ignore[index]
    assert message.startswith(f"{method}: 'bm9wZQ' is not a cursor this server gave; list again without")
