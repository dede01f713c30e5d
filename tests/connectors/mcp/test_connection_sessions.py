"""Sessions per connection: an upstream that binds each session to the bearer token that opened it.

The upstream is the official SDK's ``MCPServer`` (streamable HTTP, stateful, under uvicorn on 127.0.0.1 in
a thread) behind a small ASGI gate that records which ``Authorization`` opened each ``Mcp-Session-Id``
and refuses (403) a request whose token is not its session opener's — as a server that binds sessions to
users does. Two vault connections call through the hub: each gets its own session, and none is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from tests._patience import patience
from tests.connectors.mcp.conftest import NodeHttp
from tests.connectors.mcp.test_upstream_auth import serving
from toolbridge import CallResult, Hub, Principal
from toolbridge.assembly._mcp import _default_credentials
from toolbridge.audit import AuditLog
from toolbridge.connectors.mcp import HttpServer, McpConnector, Protocol, SessionPool
from toolbridge.connectors.mcp._sse import SseChannel
from toolbridge.credentials import (
    AuthConfig,
    CredentialManager,
    Keyring,
    MasterKey,
    Material,
    Secret,
    StaticKeys,
    Vault,
)
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio

AGENT = Principal.agent("bot", ["*:write"])
TOKENS = {"default": "token-of-alice-" + "a" * 20, "bob": "token-of-bob-" + "b" * 20, "carol": "c" * 32}
Scope = dict[str, Any]


@dataclass
class BindingGate:
    """Remembers the Authorization that opened each session; refuses any other one on that session."""

    opener: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def wrap(self, app: Any) -> Any:
        async def gated(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            auth, sid = headers.get("authorization", ""), headers.get("mcp-session-id")
            if sid is not None and sid in self.opener and self.opener[sid] != auth:
                self.refused.append(sid)
                await _refuse(send)
                return
            if sid is not None and scope["method"] == "DELETE":
                self.deleted.append(sid)

            async def recording(message: Scope) -> None:
                if message["type"] == "http.response.start" and sid is None:
                    for key, value in message.get("headers", []):
                        if key.lower() == b"mcp-session-id":
                            self.opener[value.decode()] = auth
                await send(message)

            await app(scope, receive, recording)

        return gated

    def sessions_of(self, account: str) -> list[str]:
        return [sid for sid, auth in self.opener.items() if auth == f"Bearer {TOKENS[account]}"]


async def _refuse(send: Any) -> None:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "not your session"}}
    await send(
        {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def bound_upstream(gate: BindingGate) -> Any:
    server = MCPServer("bound")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    return gate.wrap(server.streamable_http_app(json_response=True))


@asynccontextmanager
async def hub_for(
    sqlite_url: str,
    url: str,
    *,
    protocol: Protocol = "2025-11-25",
    pool: SessionPool | None = None,
    tool: str = "up.add",
) -> AsyncIterator[tuple[Hub, McpConnector]]:
    db = Database(sqlite_url)
    manager = CredentialManager(
        Vault(db, StaticKeys(Keyring(MasterKey.generate()))),
        {"up": AuthConfig(scheme="bearer")},
        audit=AuditLog(db),
    )
    hub = Hub(database=db, credentials=manager)
    connector = McpConnector(
        "up",
        HttpServer(url=url, protocol=protocol),
        restart_delays=(0.05,),
        default_credentials=_default_credentials("up", manager),
        session_pool=pool,
    )
    hub.add_connector(connector)
    async with hub:
        for account, token in TOKENS.items():
            await manager.add("up", account, Material(secret=Secret(token)))
        with anyio.fail_after(patience(10)):
            while tool not in hub.catalog or not connector.connected:  # noqa: ASYNC110 - bounded poll
                await anyio.sleep(0.02)  # the connector retries until its default connection exists
        yield hub, connector


def text(result: CallResult) -> str:
    return str(result.value["content"][0]["text"])


async def test_two_connections_get_two_sessions_and_neither_is_refused(sqlite_url: str) -> None:
    gate = BindingGate()
    with serving(bound_upstream(gate)) as url:
        async with hub_for(sqlite_url, url) as (hub, connector):
            for i in range(3):
                alice = await hub.call(AGENT, "up.add", {"a": i, "b": 1})  # the default connection
                bob = await hub.call(AGENT, "up.add", {"a": i, "b": 2}, connection="bob")
                assert (text(alice), text(bob)) == (str(i + 1), str(i + 2))
            async with anyio.create_task_group() as tg:  # concurrent calls open bob's session only once
                for _ in range(5):
                    tg.start_soon(lambda: hub.call(AGENT, "up.add", {"a": 1, "b": 1}, connection="bob"))
            assert len(gate.sessions_of("default")) == 1  # the shared session, which listed the tools
            assert len(gate.sessions_of("bob")) == 1
            assert len(connector.pool) == 1 and connector.pool.opened == 1
        assert gate.refused == []
        assert sorted(gate.deleted) == sorted(gate.opener)  # every session closed when the hub exits


async def test_the_pool_is_bounded_and_idle_sessions_close(sqlite_url: str) -> None:
    gate = BindingGate()
    with serving(bound_upstream(gate)) as url:
        async with hub_for(sqlite_url, url, pool=SessionPool(size=1, idle=60)) as (hub, connector):
            await hub.call(AGENT, "up.add", {"a": 1, "b": 1}, connection="bob")
            await hub.call(AGENT, "up.add", {"a": 1, "b": 1}, connection="carol")  # bob's is closed
            assert len(connector.pool) == 1
            assert gate.deleted == gate.sessions_of("bob")
            assert await connector.pool.sweep(anyio.current_time()) == 0  # carol's was just used
            assert await connector.pool.sweep(anyio.current_time() + 60) == 1
            assert gate.deleted == gate.sessions_of("bob") + gate.sessions_of("carol")
            result = await hub.call(AGENT, "up.add", {"a": 2, "b": 2}, connection="carol")
            assert text(result) == "4" and len(gate.sessions_of("carol")) == 2
        assert gate.refused == []


async def test_the_stateless_era_keeps_one_shared_path(sqlite_url: str) -> None:
    gate = BindingGate()
    with serving(bound_upstream(gate)) as url:
        async with hub_for(sqlite_url, url, protocol="auto") as (hub, connector):
            result = await hub.call(AGENT, "up.add", {"a": 1, "b": 2}, connection="bob")
            assert text(result) == "3"
            assert connector._session is not None and connector._session.modern
            assert len(connector.pool) == 0 and gate.opener == {}  # each request stood alone


@pytest.mark.node
async def test_over_legacy_sse_a_connection_gets_its_own_stream(
    sqlite_url: str, everything_sse: NodeHttp
) -> None:
    async with hub_for(sqlite_url, everything_sse.url, protocol="auto", tool="up.echo") as (hub, connector):
        assert connector.transport == "sse"  # detected: the POST was refused, the GET gave a stream
        mine = await hub.call(AGENT, "up.echo", {"message": "bob"}, connection="bob")
        shared = await hub.call(AGENT, "up.echo", {"message": "alice"})
        assert (text(mine), text(shared)) == ("Echo: bob", "Echo: alice")
        assert len(connector.pool) == 1 and connector.sessions_opened == 2
        session = connector._session
        assert session is not None and isinstance(session.channel, SseChannel)
