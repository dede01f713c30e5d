"""A hand-built hub hears its MCP connectors: ``Hub.add_connector`` attaches them (no callbacks to pass).

The upstream is a real stdio server on the official SDK whose tool list grows on request and which says
so (``notifications/tools/list_changed``, or its listen stream in the stateless era).
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from tests._patience import patience
from toolbridge import ConfigurationError, Hub, Principal
from toolbridge.connectors._events import ListChanged
from toolbridge.connectors.mcp import McpConnector, StdioServer

pytestmark = pytest.mark.anyio

GROWING = Path(__file__).parents[2] / "surfaces" / "mcp" / "growing_server.py"
LOCAL = Principal.local()


def growing() -> StdioServer:
    return StdioServer(sys.executable, (str(GROWING),))


@pytest.mark.parametrize("protocol", ["2025-11-25", "2026-07-28"])
async def test_a_connector_built_by_hand_reports_to_the_hub_it_is_added_to(protocol: str) -> None:
    told: list[str] = []
    hub = Hub()
    server = StdioServer(sys.executable, (str(GROWING),), protocol=protocol)  # type: ignore[arg-type]
    connector = McpConnector("grow", server, on_tools_changed=lambda: told.append("tools"))
    hub.add_connector(connector)
    changed = anyio.Event()
    hub.events.subscribe(lambda event: changed.set() if event == ListChanged("grow", "tools") else None)
    async with hub:
        await hub.call(LOCAL, "grow.grow", {"name": "sprout"})
        with anyio.fail_after(patience(30)):
            await changed.wait()  # the upstream's notice reached the hub's event bus
            while "grow.sprout" not in {t.name for t in hub.list_tools(LOCAL)}:  # noqa: ASYNC110
                await anyio.sleep(0.02)  # bounded polling: the catalog reads the tools again
        assert (await hub.call(LOCAL, "grow.sprout", {})).value["content"][0]["text"] == "I am sprout"
    assert told, "the constructor's callback is still called beside the hub's"


async def test_a_connector_belongs_to_one_hub() -> None:
    connector = McpConnector("grow", growing())
    Hub().add_connector(connector)
    other = Hub()
    with pytest.raises(ConfigurationError, match="'grow' is already in a hub") as info:
        other.add_connector(connector)
    assert "one connector per hub" in (info.value.hint or "")
    assert other.connector_names() == []
