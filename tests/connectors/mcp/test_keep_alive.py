"""Idle keep-alive connections to an HTTP upstream are kept for less time than the server keeps them.

Servers close an idle connection after a few seconds (uvicorn and Node after 5); a request sent on it as
the server closes it fails without an answer ("Server disconnected without sending a response"), and a
``tools/call`` then ends ``outcome_unknown``. The upstream is the official SDK's ``MCPServer`` or a small
Starlette app under uvicorn on 127.0.0.1; the client's clock is injected (``FastTransport(clock=...)``),
so no test waits for an idle timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.mcp.conftest import hub_with
from toolbridge import Principal
from toolbridge.connectors._fastpath import IDLE_TIMEOUT, FastTransport, _announced_timeout
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.connectors.mcp._client import upstream_client

pytestmark = pytest.mark.anyio
AGENT = Principal.local()


class Clock:
    """The client's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Peers:
    """What the upstream served: the client port of each JSON-RPC request by method; ``announce``: a
    ``Keep-Alive`` header it sends with each answer."""

    announce: str | None = None
    ports: dict[str, list[int]] = field(default_factory=dict)

    def wrap(self, app: Any) -> Any:
        async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
            async def reading() -> dict[str, Any]:
                message: dict[str, Any] = await receive()
                if scope["type"] == "http" and message.get("body"):
                    method = json.loads(message["body"]).get("method", "")
                    self.ports.setdefault(method, []).append(scope["client"][1])
                return message

            async def announcing(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start" and self.announce is not None:
                    headers = [*message.get("headers", []), (b"keep-alive", self.announce.encode())]
                    message = {**message, "headers": headers}
                await send(message)

            await app(scope, reading, announcing)

        return recording

    def every_port(self) -> set[int]:
        return {port for ports in self.ports.values() for port in ports}

    async def listening(self) -> None:
        """Until the connector's listen stream is open (it holds a connection of its own)."""
        with anyio.fail_after(patience(10)):
            while "subscriptions/listen" not in self.ports:  # noqa: ASYNC110  # uvicorn runs in a thread
                await anyio.sleep(0.01)


@contextmanager
def sdk_upstream(peers: Peers, **config: Any) -> Iterator[str]:
    server = MCPServer("kept")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    sock = loopback_socket()
    with uvicorn_thread(peers.wrap(server.streamable_http_app(json_response=True)), sock, **config):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


async def add(hub: Any) -> str:
    result = await hub.call(AGENT, "ka.add", {"a": 2, "b": 3})
    return str(result.value["content"][0]["text"])


@pytest.mark.parametrize(
    ("server_keeps", "announce", "kept"),
    [(5, None, IDLE_TIMEOUT), (10, "timeout=10, max=100", 8.0)],
    ids=["uvicorn-default", "announced"],
)
async def test_a_call_after_the_server_idle_timeout_goes_on_a_fresh_connection(
    server_keeps: int, announce: str | None, kept: float
) -> None:
    clock = Clock()
    peers = Peers(announce=announce)
    with sdk_upstream(peers, lifespan="on", timeout_keep_alive=server_keeps) as url:
        connector = McpConnector("ka", HttpServer(url=url), transport=FastTransport(clock=clock))
        async with hub_with(connector) as hub:
            await peers.listening()
            assert await add(hub) == "5"
            clock.now += kept - 0.1  # idle for less than it is kept: reused
            seen = peers.every_port()
            assert await add(hub) == "5"
            # (another request of the connector, such as a tools/list after the listen stream opened, may
            # have been released last: any idle connection is reused, none is opened)
            assert peers.ports["tools/call"][-1] in seen
            clock.now += server_keeps  # idle as long as the server keeps it: it may be closing it now
            seen = peers.every_port()
            assert await add(hub) == "5"
            assert peers.ports["tools/call"][-1] not in seen


async def test_an_announced_timeout_too_short_to_use_is_not_kept() -> None:
    peers = Peers(announce="timeout=2")
    with sdk_upstream(peers, lifespan="on", timeout_keep_alive=2) as url:
        connector = McpConnector("ka", HttpServer(url=url), transport=FastTransport())
        async with hub_with(connector) as hub:
            for _ in range(3):
                assert await add(hub) == "5"
    every = [port for ports in peers.ports.values() for port in ports]
    assert len(peers.ports["tools/call"]) == 3
    assert len(set(every)) == len(every)  # every request on a connection of its own


async def echo_port(request: Request) -> JSONResponse:
    await request.body()  # answered before its body arrived, uvicorn would never time the connection out
    assert request.client is not None
    return JSONResponse({"port": request.client.port})


@pytest.mark.parametrize("fast", [False, True], ids=["httpx2", "fast-path"])
async def test_a_request_after_the_server_closed_an_idle_connection_succeeds(fast: bool) -> None:
    """uvicorn closes idle connections after 50 ms here (announcing nothing): the next request goes on a
    fresh connection, on both clients (httpcore sees the closed socket; the fast path sends again once)."""
    sock = loopback_socket()
    app = Starlette(routes=[Route("/", echo_port, methods=["POST"])])
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with uvicorn_thread(app, sock, timeout_keep_alive=0.05) as server:
        async with upstream_client(HttpServer(url=url, fast_path=fast)) as client:
            first = (await client.post(url, json={})).json()["port"]
            await closed_by_server(server)
            second = (await client.post(url, json={})).json()["port"]
    assert second != first


async def closed_by_server(server: uvicorn.Server) -> None:
    with anyio.fail_after(patience(10)):
        while server.server_state.connections:  # noqa: ASYNC110  # uvicorn offers no event for a close
            await anyio.sleep(0.01)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("timeout=5", 5.0),
        ("max=100, Timeout = 7", 7.0),
        ("timeout=5, max=100", 5.0),
        ("timeout=", None),
        ("timeout=2.5", 2.0),  # whole seconds, rounded down (as undici reads it)
        ("timeout=-1", None),
        ("timeouts=5", None),
        ("max=5", None),
        ("timeout=\u00b2", None),
        ("timeout=1234567890", None),
        ("", None),
    ],
)
def test_the_announced_keep_alive_timeout_is_read_strictly(header: str, seconds: float | None) -> None:
    assert _announced_timeout(header) == seconds
