"""An agent that cancels a call cancels the upstream's work, in both eras on both sides.

toolbridge (uvicorn on 127.0.0.1) federates fidelity_server.py, whose ``slow`` tool waits until it is
cancelled, noting in a file when it started and when it was cancelled. The agent is the official Python
client: in the handshake era it cancels with ``notifications/cancelled``; in the 2026-07-28 era by
closing the request (the era's only signal). The upstream is reached over stdio (2025-11-25: toolbridge sends
``notifications/cancelled``) or streamable HTTP (2026-07-28: toolbridge closes its request).

A handshake-era agent's POST of the cancelled call stays open until toolbridge answers it (the SDK's
"Request cancelled" error); the test leaves the client only once that answer reached the client's session:
the SDK client hands a late answer to a session it already closed, and fails (ClosedResourceError,
BrokenResourceError).
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
    posts = Posts()
    async with (
        toolbridge(server) as (url, agent_key),
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {agent_key}"}, timeout=patience(60), transport=posts
        ) as http,
        Client(streamable_http_client(url, http_client=http), mode=agent) as client,  # type: ignore[arg-type]
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "fid.slow", {"key": key})
            await noted(marker, f"started {key}")
            tg.cancel_scope.cancel()
        await noted(marker, f"cancelled {key}")  # while toolbridge still runs (its shutdown cancels too)
        await posts.answered()
        with anyio.fail_after(patience(30)):  # its answer comes after the late one (one stream, in order)
            assert not (await client.call_tool("fid.peek", {})).is_error


class Posts(httpx2.AsyncBaseTransport):
    """The agent's HTTP transport, counting its POSTs whose answers are not yet read."""

    def __init__(self) -> None:
        self.real = httpx2.AsyncHTTPTransport()
        self.open = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method != "POST":
            return await self.real.handle_async_request(request)
        self.open += 1
        try:
            response = await self.real.handle_async_request(request)
        except BaseException:
            self.open -= 1
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _Counted(response.stream, self)
        return response

    async def answered(self) -> None:
        """Wait (bounded) until every POST's answer was read (the SDK then hands it to its session)."""
        with anyio.fail_after(patience(30)):
            while self.open:  # noqa: ASYNC110  # a count: bounded polling
                await anyio.sleep(0.01)

    async def aclose(self) -> None:
        await self.real.aclose()


class _Counted(httpx2.AsyncByteStream):
    """An answer's body; closing it (httpx2 does once it is read) leaves the count of open POSTs."""

    def __init__(self, body: httpx2.AsyncByteStream, posts: Posts) -> None:
        self.body, self.posts, self.closed = body, posts, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.body:
            yield chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.posts.open -= 1
        await self.body.aclose()


async def noted(marker: Path, line: str) -> None:
    """Wait (bounded) until the upstream wrote ``line``."""
    with anyio.fail_after(patience(30)):
        while line not in _lines(marker):  # noqa: ASYNC110  # a file: bounded polling
            await anyio.sleep(0.05)


def _lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []
