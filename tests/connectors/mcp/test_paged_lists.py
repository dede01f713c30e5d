"""An upstream that pages its lists: every page is read, and a server whose cursors never end is bounded."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from toolbridge import Principal
from toolbridge.connectors.mcp import McpConnector, StdioServer

from .conftest import hub_with

pytestmark = pytest.mark.anyio
PAGED = Path(__file__).with_name("paged_server.py")


@pytest.mark.parametrize("protocol", ["2025-11-25", "2026-07-28"])
async def test_every_page_of_an_upstreams_lists_is_read(protocol: str) -> None:
    """Reading stopped after 100 pages without a word: a server paging one item at a time lost the rest."""
    server = StdioServer(sys.executable, (str(PAGED),), env={"PAGED_ITEMS": "150"}, protocol=protocol)  # type: ignore[arg-type]
    connector = McpConnector("paged", server)
    async with hub_with(connector) as hub:
        names = sorted(tool.name for tool in hub.catalog if tool.connector == "paged")
        assert names == [f"paged.tool_{n:04d}" for n in range(150)]
        assert len(connector.extras.resources) == 150
        result = await hub.call(Principal.local(), "paged.tool_0149", {})
        assert result.value["content"][0]["text"] == "tool_0149"


async def test_a_cursor_given_twice_ends_the_list_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    server = StdioServer(sys.executable, (str(PAGED),), env={"PAGED_LOOP": "1"}, protocol="2025-11-25")
    connector = McpConnector("paged", server)
    with caplog.at_level(logging.WARNING, logger="toolbridge.connectors.mcp"):
        async with hub_with(connector) as hub:
            names = sorted(tool.name for tool in hub.catalog if tool.connector == "paged")
    assert names == ["paged.tool_0000", "paged.tool_0001", "paged.tool_0002"]
    warned = [r.getMessage() for r in caplog.records if "twice" in r.getMessage()]
    assert len(warned) == 1 and "'2'" in warned[0] and "tools/list" in warned[0], warned
