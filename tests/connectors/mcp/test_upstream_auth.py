"""Streamable-HTTP upstreams that require a bearer token, authenticated from vault connections.

The upstream is the official SDK's ``MCPServer`` (streamable HTTP, under uvicorn on 127.0.0.1 in a
thread) behind a small ASGI gate that checks ``Authorization`` and records every header it received.
The connection lives in the credentials layer (encrypted vault); toolbridge signs each upstream request
with the calling connection's auth flow. A 401 is refreshed once (OAuth connection) and retried.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.mcpserver import MCPServer

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.credentials.fakes import FakeAuthServer, oauth_config
from toolbridge import Hub, Principal
from toolbridge.assembly._hub import build_hub
from toolbridge.assembly._mcp import _default_credentials
from toolbridge.audit import AuditLog
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.credentials import (
    AuthConfig,
    CredentialManager,
    Keyring,
    MasterKey,
    Material,
    Secret,
    StaticKeys,
    TokenSet,
    Vault,
)
from toolbridge.errors import ConfigurationError, CredentialsError, ToolbridgeError, UpstreamStatusError
from toolbridge.resilience import Resilience
from toolbridge.settings import parse_settings
from toolbridge.storage import Database
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio

AGENT_KEY = "tb_agent_key_must_never_go_upstream"
Scope = dict[str, Any]


@dataclass
class Gate:
    """Lets a request through only with ``Authorization: Bearer <a valid token>``; records what came."""

    valid: set[str]
    seen: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0
    refused_calls: int = 0
    """Refused ``tools/call`` requests (the connector's background listen stream is refused too)."""

    def wrap(self, app: Any) -> Any:
        async def gated(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.seen.append(headers)
            LAST_AUTH[0] = headers.get("authorization", "")
            token = headers.get("authorization", "").removeprefix("Bearer ")
            if token in self.valid:
                await app(scope, receive, send)
                return
            self.refused += 1
            self.refused_calls += headers.get("mcp-method") == "tools/call"
            challenge = b'Bearer error="invalid_token", resource_metadata="http://127.0.0.1/.well-known/x"'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", challenge), (b"content-type", b"application/json")],
                }
            )
            await send(
                {"type": "http.response.body", "body": json.dumps({"error": "invalid_token"}).encode()}
            )

        return gated


LAST_AUTH = [""]


def upstream_app(gate: Gate) -> Any:
    server = MCPServer("guarded")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    @server.tool(description="Echo the Authorization header this server received (a leaky upstream).")
    def leak() -> str:
        return f"you sent {LAST_AUTH[0]}"

    return gate.wrap(server.streamable_http_app(json_response=True))


@contextmanager
def serving(app: Any) -> Iterator[str]:
    sock = loopback_socket()
    with uvicorn_thread(app, sock, lifespan="on"):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


@asynccontextmanager
async def federated(
    sqlite_url: str, url: str, binding: AuthConfig, token_server: FakeAuthServer | None = None
) -> AsyncIterator[tuple[Hub, CredentialManager, McpConnector]]:
    handler = token_server.handler if token_server is not None else None
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) if handler else None
    db = Database(sqlite_url)
    manager = CredentialManager(
        Vault(db, StaticKeys(Keyring(MasterKey.generate()))),
        {"up": binding},
        client=client,
        audit=AuditLog(db),
    )

    async def no_wait(_seconds: float) -> None:
        return None

    hub = Hub(database=db, credentials=manager, resilience=Resilience(sleep=no_wait))
    connector = McpConnector(
        "up",
        HttpServer(url=url),
        restart_delays=(0.05,),
        default_credentials=_default_credentials("up", manager),
    )
    hub.add_connector(connector)
    async with hub:
        yield hub, manager, connector
    if client is not None:
        await client.aclose()


async def until_tools(hub: Hub, connector: McpConnector, name: str) -> None:
    with anyio.fail_after(patience(10)):
        while name not in hub.catalog or not connector.connected:  # noqa: ASYNC110 - bounded poll
            await anyio.sleep(0.02)  # the connector retries until a connection exists


AGENT = Principal.agent("bot", ["*:write"], key_id=AGENT_KEY)


async def test_bearer_connection_signs_every_upstream_request(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "vault-bearer-" + "s3cr3t" * 4
    gate = Gate(valid={secret})
    with serving(upstream_app(gate)) as url:
        async with federated(sqlite_url, url, AuthConfig(scheme="bearer")) as (hub, manager, connector):
            await manager.add("up", "default", Material(secret=Secret(secret)))
            await until_tools(hub, connector, "up.add")
            result = await hub.call(AGENT, "up.add", {"a": 2, "b": 3})
            assert result.value["content"][0]["text"] == "5"
            leaked = await hub.call(AGENT, "up.leak", {})
            await hub.audit.flush()
            audit = json.dumps([r.entry.tool + str(r.entry) for r in await hub.audit.tail(50)])
    assert gate.seen and all(h.get("authorization") == f"Bearer {secret}" for h in gate.seen[-4:])
    assert not any(AGENT_KEY in json.dumps(h) for h in gate.seen)
    assert secret not in json.dumps(leaked.value) and secret not in leaked.text
    assert secret not in audit and "(credentials.use)" in audit
    assert secret not in caplog.text


async def test_a_401_refreshes_the_oauth_connection_once_and_retries(sqlite_url: str) -> None:
    tokens = FakeAuthServer(rotate=False)
    gate = Gate(valid=tokens.access)  # the upstream accepts what the authorization server issued
    with serving(upstream_app(gate)) as url:
        async with federated(sqlite_url, url, oauth_config(), tokens) as (hub, manager, connector):
            doc = tokens.issue()
            await manager.add("up", "default", Material(tokens=TokenSet.from_response(doc, now=time.time())))
            await until_tools(hub, connector, "up.add")
            tokens.revoke_access()  # the upstream no longer takes the current access token
            refused = gate.refused_calls
            result = await hub.call(AGENT, "up.add", {"a": 20, "b": 22})
            assert result.value["content"][0]["text"] == "42"
            assert tokens.refreshes == 1 and gate.refused_calls == refused + 1
            assert gate.seen[-1]["authorization"].removeprefix("Bearer ") in tokens.access


async def test_a_refused_static_secret_asks_for_a_reconnect_and_stays_secret(sqlite_url: str) -> None:
    secret = "vault-bearer-" + "x" * 24
    gate = Gate(valid={secret})
    with serving(upstream_app(gate)) as url:
        async with federated(sqlite_url, url, AuthConfig(scheme="bearer")) as (hub, manager, connector):
            await manager.add("up", "default", Material(secret=Secret(secret)))
            await until_tools(hub, connector, "up.add")
            gate.valid.clear()  # the key was revoked upstream
            with pytest.raises(CredentialsError) as caught:
                await hub.call(AGENT, "up.add", {"a": 1, "b": 1})
    error = caught.value
    assert "401" in str(error) and "reconnect" in str(error.hint)
    assert isinstance(error.__cause__, UpstreamStatusError) and error.__cause__.upstream_status == 401
    assert secret not in f"{error} {error.hint} {json.dumps(error.extra(), default=str)}"


async def test_without_a_connection_the_connector_waits_and_calls_fail_clearly(sqlite_url: str) -> None:
    gate = Gate(valid={"t" * 32})
    with serving(upstream_app(gate)) as url:
        async with federated(sqlite_url, url, AuthConfig(scheme="bearer")) as (hub, _, _connector):
            await anyio.sleep(0.2)
            assert not [t for t in hub.catalog if t.connector == "up"]
            assert gate.seen == []  # nothing went upstream without a connection
            with pytest.raises(ToolbridgeError):
                await hub.call(AGENT, "up.add", {"a": 1, "b": 1})


ENV_SERVER = Path(__file__).with_name("env_server.py")
SETTINGS = """
server:
  database: {database}
connectors:
  remote:
    kind: mcp
    url: {url}
    approve: all-on-first-connect
    connections:
      scheme: bearer
  local:
    kind: mcp
    command: {python}
    args: [{script}]
    approve: all-on-first-connect
    env:
      UPSTREAM_TOKEN: connection:secret
    connections:
      scheme: api_key
"""


async def test_settings_wire_http_and_stdio_upstreams_to_their_connections(sqlite_url: str) -> None:
    remote_secret, local_secret = "remote-" + "r" * 24, "local-" + "l" * 24
    gate = Gate(valid={remote_secret})
    with serving(upstream_app(gate)) as url:
        text = SETTINGS.format(database=sqlite_url, url=url, python=sys.executable, script=ENV_SERVER)
        hub = build_hub(parse_settings(text), keys=StaticKeys(Keyring(MasterKey.generate())))
        remote, local = hub.connector("remote"), hub.connector("local")
        assert isinstance(remote, McpConnector) and isinstance(local, McpConnector)
        assert hub.credentials is not None
        async with hub:
            await hub.credentials.add("remote", "default", Material(secret=Secret(remote_secret)))
            await hub.credentials.add("local", "default", Material(secret=Secret(local_secret)))
            await until_tools(hub, remote, "remote.add")
            await until_tools(hub, local, "local.token")
            added = await hub.call(AGENT, "remote.add", {"a": 1, "b": 2})
            echoed = await hub.call(AGENT, "local.token", {})
    assert added.value["content"][0]["text"] == "3"
    assert gate.seen[-1]["authorization"] == f"Bearer {remote_secret}"
    assert echoed.value["content"][0]["text"] == "token=[redacted]"  # the process had it; output redacted


async def test_a_secret_the_environment_gave_a_server_is_masked_in_its_answers(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``env: {X: env:NAME}`` (and ``headers:`` alike) hand a server a secret that is no connection's: a
    server echoing it reached the agent (tests/e2e/test_secret_canaries.py found it for headers)."""
    monkeypatch.setenv("TB_TEST_UPSTREAM_TOKEN", "static-" + "s" * 24)
    text = SETTINGS.format(database=sqlite_url, url="-", python=sys.executable, script=ENV_SERVER)
    text = text.split("  remote:")[0] + "  local:" + text.split("  local:")[1]
    text = text.replace("connection:secret", "env:TB_TEST_UPSTREAM_TOKEN").split("    connections:")[0]
    hub = build_hub(parse_settings(text))
    local = hub.connector("local")
    assert isinstance(local, McpConnector)
    async with hub:
        await until_tools(hub, local, "local.token")
        echoed = await hub.call(AGENT, "local.token", {})
        quoted = await local.get_prompt("local.quote", {})
        [uri] = [u for u in local.extras.resources if u.endswith("token")]
        read = await local.read_resource(uri)
        with pytest.raises(ToolbridgeError) as refused:
            await local.get_prompt("local.refuse", {})
    assert echoed.value["content"][0]["text"] == "token=[redacted]"
    assert quoted["messages"][0]["content"]["text"] == "use token=[redacted]"  # prompts are no tool calls:
    assert read["contents"][0]["text"] == "token=[redacted]"  # the connector masks them itself
    assert "static-" not in str(refused.value) and "[redacted]" in str(refused.value)


def test_connection_references_need_connections() -> None:
    text = SETTINGS.format(
        database="sqlite+aiosqlite://", url="http://127.0.0.1:9/mcp", python="x", script="y"
    )
    settings = parse_settings(text.replace("    connections:\n      scheme: api_key\n", ""))
    with pytest.raises(ConfigurationError, match="declares no connections"):
        build_hub(settings, keys=StaticKeys(Keyring(MasterKey.generate())))


async def test_over_rest_the_agent_key_stops_at_toolbridge(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "remote-" + "q" * 26
    gate = Gate(valid={secret})
    with serving(upstream_app(gate)) as url:
        text = SETTINGS.format(database=sqlite_url, url=url, python=sys.executable, script=ENV_SERVER)
        settings = parse_settings(text.split("  local:")[0] + "agents:\n  bot:\n    scopes: ['*']\n")
        hub = build_hub(settings, keys=StaticKeys(Keyring(MasterKey.generate())))
        remote = hub.connector("remote")
        assert isinstance(remote, McpConnector)
        web = create_app(hub)
        async with web.router.lifespan_context(web):
            key = await hub.agents.create("bot")
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=web), base_url="http://tb"
            ) as http:
                added = await http.post(
                    "/v1/connections", json={"connector": "remote", "secret": secret}, headers=auth
                )
                assert added.status_code == 201, added.text
                await until_tools(hub, remote, "remote.add")
                called = await http.post(
                    "/v1/tools/remote.add/call", json={"arguments": {"a": 4, "b": 5}}, headers=auth
                )
                leaked = await http.post("/v1/tools/remote.leak/call", json={"arguments": {}}, headers=auth)
            await hub.audit.flush()
            audit = json.dumps([r.as_dict() for r in await hub.audit.tail(100)], default=str)
    assert called.status_code == 200 and "9" in called.text, called.text
    assert leaked.status_code == 200 and "[redacted]" in leaked.text
    received = json.dumps(gate.seen)
    assert key not in received and secret in received  # the vault secret went upstream, the agent key not
    for corpus in (added.text, called.text, leaked.text, audit, caplog.text):
        assert secret not in corpus
