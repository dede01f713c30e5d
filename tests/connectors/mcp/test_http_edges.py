"""Streamable HTTP edge cases against a scripted upstream: 404 for an expired session, JSON answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub, Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector

pytestmark = pytest.mark.anyio
TOOL = {"name": "ping", "description": "Answer pong.", "inputSchema": {"type": "object"}}


@dataclass
class Upstream:
    """A handshake-era server that forgets its sessions when told to (as after a restart)."""

    sessions: set[str] = field(default_factory=set)
    opened: int = 0
    seen_404: int = 0

    def forget(self) -> None:
        self.sessions.clear()

    async def handle(self, request: Request) -> Response:
        message: dict[str, Any] = json.loads(await request.body())
        method, session = message.get("method"), request.headers.get("mcp-session-id")
        if method == "initialize":
            self.opened += 1
            sid = f"s{self.opened}"
            self.sessions.add(sid)
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "x", "version": "1"},
            }
            return JSONResponse(
                {"jsonrpc": "2.0", "id": message["id"], "result": result}, headers={"mcp-session-id": sid}
            )
        if method == "server/discover":
            return JSONResponse(
                {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}}, 400
            )
        if session not in self.sessions:
            self.seen_404 += 1
            return Response(status_code=404)
        if "id" not in message:
            return Response(status_code=202)
        if method == "tools/list":
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [TOOL]}})
        content = [{"type": "text", "text": f"pong from {session}"}]
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"content": content}})


@contextmanager
def serving(upstream: Upstream) -> Iterator[str]:
    sock = loopback_socket()
    app = Starlette(routes=[Route("/mcp", upstream.handle, methods=["POST", "DELETE"])])
    with uvicorn_thread(app, sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


async def test_expired_session_is_reopened_once_transparently() -> None:
    upstream = Upstream()
    with serving(upstream) as url:
        connector = McpConnector("up", HttpServer(url=url))
        hub = Hub()
        hub.add_connector(connector)
        async with hub:
            first = await hub.call(Principal.local(), "up.ping", {})
            assert first.value["content"][0]["text"] == "pong from s1"
            upstream.forget()
            second = await hub.call(Principal.local(), "up.ping", {})
            assert second.value["content"][0]["text"] == "pong from s2"
            assert upstream.seen_404 == 1 and connector.sessions_opened == 2
