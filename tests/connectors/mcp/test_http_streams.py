"""Streams of a streamable-HTTP upstream that the connector must follow.

- The session's ``GET`` stream (2025-11-25): server-everything over streamable HTTP sends its log
  messages and resource updates there, outside any request; they must reach ``on_event``.
- The same stream's ``notifications/tools/list_changed`` (growing_server.py, the SDK's MCPServer in the
  handshake era): the connector lists the tools again.
- SSE polling (SEP-1699): fidelity_server.py (the official SDK's MCPServer with an event store) closes
  a call's SSE answer before the response; the connector resumes it with ``Last-Event-ID`` instead of
  failing the call and dropping the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from tests._patience import patience
from toolbridge import Hub, Principal
from toolbridge.connectors._events import HubEvent, LogMessage, ResourceUpdated
from toolbridge.connectors.mcp import HttpServer, McpConnector

from .conftest import NodeHttp, hub_with, python_http

pytestmark = pytest.mark.anyio
LOCAL = Principal.local()
FIDELITY = Path(__file__).parents[2] / "surfaces" / "mcp" / "fidelity_server.py"
GROWING = FIDELITY.with_name("growing_server.py")


@dataclass
class Heard:
    events: list[HubEvent] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    def __call__(self, event: HubEvent) -> None:
        self.events.append(event)
        self.arrived.set()
        self.arrived = anyio.Event()

    async def first(self, kind: type) -> HubEvent:
        with anyio.fail_after(patience(30)):
            while True:
                found = next((e for e in self.events if isinstance(e, kind)), None)
                if found is not None:
                    return found
                await self.arrived.wait()


@pytest.mark.node
async def test_a_handshake_era_upstream_is_heard_on_its_sessions_get_stream(
    everything_http: NodeHttp,
) -> None:
    heard = Heard()
    connector = McpConnector("ev", everything_http.server, on_event=heard)
    async with hub_with(connector) as hub:
        assert connector.capabilities and not connector._stateless
        uri = next(iter(connector.extras.resources))
        await connector.subscribe_resource(uri)
        await hub.call(LOCAL, "ev.toggle-subscriber-updates", {})
        await hub.call(LOCAL, "ev.toggle-simulated-logging", {})
        update = await heard.first(ResourceUpdated)
        log = await heard.first(LogMessage)
    assert update == ResourceUpdated("ev", uri)
    assert isinstance(log, LogMessage) and log.connector == "ev"


@pytest.fixture(scope="module")
def polling_url() -> Iterator[str]:
    """fidelity_server.py over streamable HTTP with an event store and a 100 ms retry (SSE polling)."""
    with python_http(FIDELITY, "polling") as url:
        yield url


async def test_a_stream_the_server_closes_before_the_response_is_resumed(polling_url: str) -> None:
    heard = Heard()
    connector = McpConnector("fid", HttpServer(polling_url, protocol="2025-11-25"), on_event=heard)
    async with hub_with(connector) as hub:
        result = await hub.call(LOCAL, "fid.reconnect", {})
        after = await hub.call(LOCAL, "fid.with_meta", {})
        assert connector.sessions_opened == 1  # the session was kept
    assert result.value["content"] == [{"type": "text", "text": "answered after the stream was closed"}]
    assert after.value["structuredContent"] == {"ok": True}
    logged = [e.data for e in heard.events if isinstance(e, LogMessage)]
    assert logged == ["before the stream closes", "after the stream was closed"]


async def test_a_closed_stream_is_resumed_on_httpx2s_client_too(polling_url: str) -> None:
    """The same on httpx2's client (``fast_path: false``) instead of the fast path. (The SDK's server
    closed no stream of a stateless-era request when tried, so the handshake era is the one tested.)"""
    connector = McpConnector("fid", HttpServer(polling_url, protocol="2025-11-25", fast_path=False))
    async with hub_with(connector) as hub:
        result = await hub.call(LOCAL, "fid.reconnect", {})
        assert connector.sessions_opened == 1
    assert result.value["content"] == [{"type": "text", "text": "answered after the stream was closed"}]


async def test_a_tool_list_change_on_the_get_stream_lists_the_tools_again() -> None:
    with python_http(GROWING) as url:
        hub = Hub()
        hub.add_connector(McpConnector("grow", HttpServer(url, protocol="2025-11-25")))
        async with hub:
            await hub.call(LOCAL, "grow.grow", {"name": "fresh"})  # the server says so on the GET stream
            with anyio.fail_after(patience(30)):
                while "grow.fresh" not in {t.name for t in hub.list_tools(LOCAL)}:  # noqa: ASYNC110
                    await anyio.sleep(0.02)  # bounded polling: the catalog has no event to wait on
            result = await hub.call(LOCAL, "grow.fresh", {})
    assert result.value["content"][0]["text"] == "I am fresh"
