"""An upstream that declares prompts and resources but fails some of their listings keeps its session."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from toolbridge import Principal
from toolbridge.connectors.mcp import McpConnector, StdioServer

from .conftest import hub_with

pytestmark = pytest.mark.anyio
PARTIAL = Path(__file__).with_name("partial_lists_server.py")


@pytest.mark.parametrize("protocol", ["2025-11-25", "2026-07-28"])
async def test_a_failing_optional_listing_counts_as_empty_and_the_session_is_kept(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = StdioServer(command=sys.executable, args=(str(PARTIAL),), protocol=protocol)  # type: ignore[arg-type]
    connector = McpConnector("partial", server)
    with caplog.at_level(logging.WARNING, logger="toolbridge.connectors.mcp"):
        async with hub_with(connector) as hub:
            assert connector._session is not None and connector._session.version == protocol
            assert list(connector.extras.resources) == ["toolbridge://partial/partial://notes/1"]
            assert connector.extras.templates == () and dict(connector.extras.prompts) == {}
            result = await hub.call(Principal.local(), "partial.lookup", {"key": "k"})
            assert result.value["content"][0]["text"] == "value of k"
            await connector._rediscover()  # listing again (a list changed): no second warning
    warned = [r.getMessage() for r in caplog.records if "keeps the session" in r.getMessage()]
    assert len(warned) == 2, warned
    assert any("'resources/templates/list'" in m and "-32601" in m for m in warned)
    assert any("'prompts/list'" in m and "the prompt store is offline" in m for m in warned)
