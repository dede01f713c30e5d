"""A stateless-era upstream's listen stream, opened again when agents subscribe to another resource: an
update of a resource already watched, sent while the new stream is being opened, still arrives.

The upstream is fidelity_server.py (the official SDK's MCPServer) over streamable HTTP; its ``touch``
tool publishes ``notifications/resources/updated`` to the listen streams that watch the URI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests._patience import patience
from tests.connectors.mcp.conftest import hub_with, python_http
from toolbridge import Principal
from toolbridge.connectors._events import HubEvent, ResourceUpdated
from toolbridge.connectors.mcp import HttpServer, McpConnector

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).parents[2] / "surfaces" / "mcp" / "fidelity_server.py"
WAIT = patience(30.0)  # a bound for a hung test, not a timing claim
FIRST, SECOND = "demo://note", "demo://echo/word"


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    with python_http(SERVER) as url:
        yield url


class Updates:
    def __init__(self) -> None:
        self.uris: list[str] = []
        self._arrived = anyio.Event()

    def __call__(self, event: HubEvent) -> None:
        if isinstance(event, ResourceUpdated):
            self.uris.append(event.uri)
            self._arrived.set()
            self._arrived = anyio.Event()

    async def of(self, uri: str) -> None:
        with anyio.fail_after(WAIT):
            while uri not in self.uris:
                await self._arrived.wait()


async def test_an_update_sent_while_the_listen_stream_is_opened_again_is_not_lost(upstream_url: str) -> None:
    updates = Updates()
    connector = McpConnector(
        "fid", HttpServer(upstream_url, protocol="2026-07-28"), prefixed=False, on_event=updates
    )
    agent = Principal.local()
    async with hub_with(connector) as hub:

        async def touched(uri: str) -> None:
            """Touch ``uri`` until its update arrives (its listen stream is live once it does)."""
            with anyio.fail_after(WAIT):
                while uri not in updates.uris:
                    await hub.call(agent, "fid.touch", {"uri": uri})
                    with anyio.move_on_after(0.2):
                        await updates.of(uri)

        await connector.subscribe_resource(FIRST)
        await touched(FIRST)
        updates.uris.clear()
        await connector.subscribe_resource(SECOND)  # the stream is opened again, with both URIs
        await hub.call(agent, "fid.touch", {"uri": FIRST})  # at once: before the new stream is acknowledged
        await updates.of(FIRST)  # (touched once: a stream closed before the new one listens loses it)
        await touched(SECOND)  # and the new stream carries the second URI
