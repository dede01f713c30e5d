"""An agent that cancels a call cancels the upstream's work, in both eras on both sides.

toolbridge (uvicorn on 127.0.0.1) federates fidelity_server.py, whose ``slow`` tool waits until it is
cancelled, noting in a file when it started and when it was cancelled. The agent is the official Python
client: in the handshake era it cancels with ``notifications/cancelled``; in the 2026-07-28 era by
closing the request (the era's only signal). The upstream is reached over stdio (2025-11-25: toolbridge sends
``notifications/cancelled``) or streamable HTTP (2026-07-28: toolbridge closes its request).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from tests._patience import patience
from tests.connectors.mcp.conftest import python_http
from toolbridge import Hub
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer
from toolbridge.surfaces.mcp import McpSurface

pytestmark = pytest.mark.anyio
SERVER = Path(__file__).with_name("fidelity_server.py")


@pytest.fixture(scope="module")
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cancel") / "cancelled"


@pytest.fixture(scope="module")
def http_upstream(marker: Path) -> Iterator[str]:
    with python_http(SERVER, env={"CANCELLED_FILE": str(marker)}) as url:
        yield url


@asynccontextmanager
async def toolbridge(server: HttpServer | StdioServer) -> AsyncIterator[tuple[str, str]]:
    """toolbridge serving one upstream on a real socket; yields its URL and an agent key."""
    hub = Hub()
    hub.add_connector(McpConnector("fid", server))
    async with served_over_http(hub) as found:
        yield found


@asynccontextmanager
async def served_over_http(hub: Hub) -> AsyncIterator[tuple[str, str]]:
    """``hub``'s MCP surface on a real socket (uvicorn); yields its URL and an agent key."""
    surface = McpSurface(hub)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        served = uvicorn.Server(uvicorn.Config(Starlette(routes=surface.routes()), log_level="warning"))
        async with hub, surface, anyio.create_task_group() as tg:
            key = await hub.agents.create("agent", ["*"])
            tg.start_soon(served.serve, [sock])
            with anyio.fail_after(patience(30)):
                while not served.started:  # noqa: ASYNC110  # uvicorn offers no event: bounded polling
                    await anyio.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", key
            finally:
                served.should_exit = True


@pytest.mark.parametrize("upstream", ["stdio 2025-11-25", "http 2026-07-28"])
@pytest.mark.parametrize("agent", ["legacy", "2026-07-28"])
async def test_a_cancelled_call_is_cancelled_upstream(
    upstream: str, agent: str, marker: Path, http_upstream: str
) -> None:
    env = {"CANCELLED_FILE": str(marker)}
    server = (
        StdioServer(sys.executable, (str(SERVER),), env=env, protocol="2025-11-25")
        if upstream.startswith("stdio")
        else HttpServer(http_upstream, protocol="2026-07-28")
    )
    key = f"{upstream} {agent}".replace(" ", "-")
    async with (
        toolbridge(server) as (url, agent_key),
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {agent_key}"}, timeout=patience(60)) as http,
        Client(streamable_http_client(url, http_client=http), mode=agent) as client,  # type: ignore[arg-type]
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "fid.slow", {"key": key})
            await noted(marker, f"started {key}")
            tg.cancel_scope.cancel()
        await noted(marker, f"cancelled {key}")  # while toolbridge still runs (its shutdown cancels too)


async def noted(marker: Path, line: str) -> None:
    """Wait (bounded) until the upstream wrote ``line``."""
    with anyio.fail_after(patience(30)):
        while line not in _lines(marker):  # noqa: ASYNC110  # a file: bounded polling
            await anyio.sleep(0.05)


def _lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []
