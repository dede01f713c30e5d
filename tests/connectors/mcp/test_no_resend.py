"""A request that a reused keep-alive connection carried and that got no answer is sent again on the fast
path only when it can have no second effect: a ``tools/call`` that broke after the server took it is
never sent twice (its outcome is unknown), while ``tools/list`` is.

The upstream is a small MCP server written here over raw TCP on 127.0.0.1 (JSON answers, handshake
era), so that it can do what no maintained server does on demand: take a request on a reused connection,
count its effect, and close the connection without answering (as a server that breaks mid-call does).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import pytest

from tests.connectors.mcp.conftest import hub_with
from toolbridge import Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.errors import ToolbridgeError

pytestmark = pytest.mark.anyio
AGENT = Principal.local()
ADD = {
    "name": "add",
    "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
}


@dataclass
class Upstream:
    """Serves MCP over HTTP/1.1 keep-alive; ``breaks``: the method whose first request on a reused
    connection is taken (counted) and then answered by closing the connection."""

    breaks: str
    served: Counter[str] = field(default_factory=Counter)
    broken: bool = False

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            buffer, requests = b"", 0
            while True:
                try:
                    method, body, buffer = await _read_request(client, buffer)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                message = json.loads(body) if body else {}
                name = message.get("method", method)
                self.served[name] += 1
                requests += 1
                if name == self.breaks and requests > 1 and not self.broken:
                    self.broken = True
                    return  # taken, counted, never answered
                await client.send(_answer(method, message))

    @property
    def effects(self) -> int:
        return self.served["tools/call"]


async def _read_request(client: anyio.abc.SocketStream, buffer: bytes) -> tuple[str, bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        buffer += await client.receive()
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in lines[1:])
    length = int({k.strip().lower(): v.strip() for k, v in fields.items()}.get("content-length", "0"))
    while len(buffer) < length:
        buffer += await client.receive()
    return lines[0].split(" ", 1)[0], buffer[:length], buffer[length:]


def _answer(method: str, message: dict[str, Any]) -> bytes:
    if method != "POST":
        return b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n"
    if "id" not in message:
        return b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
    name = message["method"]
    if name == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "breaking", "version": "1"},
        }
    elif name == "tools/list":
        result = {"tools": [ADD]}
    elif name == "tools/call":
        arguments = message["params"]["arguments"]
        result = {"content": [{"type": "text", "text": str(arguments["a"] + arguments["b"])}]}
    else:
        result = {}
    body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
    head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmcp-session-id: s1\r\n"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


@asynccontextmanager
async def serving(upstream: Upstream) -> AsyncIterator[str]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, upstream.handle)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "httpx2"])
async def test_a_tool_call_that_broke_on_a_reused_connection_is_not_sent_again(fast: bool) -> None:
    upstream = Upstream(breaks="tools/call")
    async with serving(upstream) as url:
        connector = McpConnector("up", HttpServer(url=url, fast_path=fast), restart_delays=(60.0,))
        async with hub_with(connector) as hub:
            assert connector.connected
            with pytest.raises(ToolbridgeError, match="may or may not have taken effect"):
                await hub.call(AGENT, "up.add", {"a": 2, "b": 3})
    assert upstream.broken and upstream.effects == 1  # taken once, not sent twice


async def test_a_tool_list_that_broke_on_a_reused_connection_is_sent_again() -> None:
    upstream = Upstream(breaks="tools/list")
    async with serving(upstream) as url:
        connector = McpConnector("up", HttpServer(url=url, fast_path=True), restart_delays=(60.0,))
        async with hub_with(connector) as hub:
            assert connector.connected and upstream.broken
            assert upstream.served["tools/list"] == 2  # the broken one, and once more on a new connection
            assert (await hub.call(AGENT, "up.add", {"a": 2, "b": 3})).value["content"][0]["text"] == "5"
