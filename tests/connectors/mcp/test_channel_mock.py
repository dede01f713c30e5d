"""MCP protocol logic of the HTTP channel on ``httpx2.MockTransport``: no sockets.

The connector's transport seam takes the mock; a small scripted MCP server answers there (handshake era,
``Mcp-Session-Id``). What is checked is the protocol behaviour a user would notice: an expired session is
opened again once, ``Retry-After`` in either form reaches the resilience layer, each call's own
credentials sign its request (header or query), and an SSE answer's notifications come before its result.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from tests.connectors.mcp.conftest import hub_with
from toolbridge import Principal
from toolbridge.connectors._base import Invocation
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.credentials import ApiKeyAuth, Secret, StaticToken
from toolbridge.errors import UpstreamStatusError

pytestmark = pytest.mark.anyio

AGENT = Principal.agent("bot", ["*:write"])
URL = "https://mcp.test/mcp"
TOOL = {"name": "add", "description": "Add.", "inputSchema": {"type": "object"}}


@dataclass
class FakeServer:
    """A handshake-era MCP server as an httpx2 handler (``status``: ``tools/call`` gets that HTTP error)."""

    sessions: int = 0
    expire_next_call: bool = False
    status: tuple[int, dict[str, str]] | None = None
    sse: bool = False
    requests: list[httpx2.Request] = field(default_factory=list)

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.method != "POST":
            return httpx2.Response(405)
        message = json.loads(request.content)
        method = message.get("method")
        if method == "initialize":
            self.sessions += 1
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "f"},
            }
            return self._answer(message, result, {"mcp-session-id": f"s{self.sessions}"})
        if "id" not in message:
            return httpx2.Response(202)
        if request.headers.get("mcp-session-id") != f"s{self.sessions}":
            return httpx2.Response(404 if "mcp-session-id" in request.headers else 400)
        if method == "tools/list":
            return self._answer(message, {"tools": [TOOL]})
        if method == "tools/call":
            return self._call(message)
        error = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}}
        return httpx2.Response(200, json=error)

    def _call(self, message: dict[str, Any]) -> httpx2.Response:
        if self.expire_next_call:
            self.expire_next_call = False
            self.sessions += 1  # the server restarted: the old session id is unknown now
            return httpx2.Response(404)
        if self.status is not None:
            return httpx2.Response(self.status[0], headers=self.status[1], text="busy")
        args = message["params"]["arguments"]
        result = {"content": [{"type": "text", "text": str(args["a"] + args["b"])}]}
        if not self.sse:
            return self._answer(message, result)
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "hi"},
        }
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        body = f"event: message\ndata: {json.dumps(note)}\n\nid: 7\ndata: {json.dumps(reply)}\n\n"
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, text=body)

    @staticmethod
    def _answer(
        message: dict[str, Any], result: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        body = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        return httpx2.Response(200, json=body, headers=headers)


def connector(fake: FakeServer) -> McpConnector:
    return McpConnector("up", HttpServer(url=URL), transport=httpx2.MockTransport(fake))


async def test_an_expired_session_is_opened_again_once_and_the_call_goes_through() -> None:
    fake = FakeServer()
    up = connector(fake)
    async with hub_with(up) as hub:
        assert (await hub.call(AGENT, "up.add", {"a": 1, "b": 2})).value["content"][0]["text"] == "3"
        fake.expire_next_call = True
        assert (await hub.call(AGENT, "up.add", {"a": 2, "b": 2})).value["content"][0]["text"] == "4"
    assert up.sessions_opened == 2


@pytest.mark.parametrize(
    ("header", "seconds"), [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)]
)
async def test_retry_after_in_either_form_reaches_the_resilience_layer(
    header: str, seconds: float | None
) -> None:
    fake = FakeServer(status=(503, {"retry-after": header}))
    up = connector(fake)
    async with up:
        tool = up.tools()[0]
        with pytest.raises(UpstreamStatusError) as info:
            await up.invoke(tool, {"a": 1, "b": 1}, Invocation(AGENT, request_id="r1"))
    assert info.value.upstream_status == 503 and info.value.retry_after == seconds


@dataclass(frozen=True)
class _Credentials:
    auth: httpx2.Auth
    connection_id: str | None = None


class _Bearer(httpx2.Auth):
    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = "Bearer of-this-call"
        yield request


async def test_each_call_is_signed_by_its_own_credentials_in_header_or_query() -> None:
    fake = FakeServer()
    up = connector(fake)
    async with up:
        tool = up.tools()[0]
        opened = len(fake.requests)
        await up.invoke(
            tool, {"a": 1, "b": 1}, Invocation(AGENT, request_id="r1", credentials=_Credentials(_Bearer()))
        )
        in_query = ApiKeyAuth("key", StaticToken(Secret("k1")), location="query")
        await up.invoke(
            tool, {"a": 1, "b": 1}, Invocation(AGENT, request_id="r2", credentials=_Credentials(in_query))
        )
    first, second = fake.requests[opened], fake.requests[opened + 1]
    assert first.headers["authorization"] == "Bearer of-this-call"
    assert second.url.params["key"] == "k1" and "authorization" not in second.headers
    assert all("authorization" not in r.headers for r in fake.requests[:opened])  # the session: no creds


async def test_an_sse_answer_brings_its_notifications_before_its_result() -> None:
    fake = FakeServer(sse=True)
    events: list[Any] = []
    up = McpConnector("up", HttpServer(url=URL), transport=httpx2.MockTransport(fake), on_event=events.append)
    async with up:
        result = await up.invoke(up.tools()[0], {"a": 20, "b": 22}, Invocation(AGENT, request_id="r1"))
    assert result["content"][0]["text"] == "42"
    assert [e.data for e in events] == ["hi"]
