"""Connections owned by principals: each agent's call goes out with its own account (checked at a real
upstream on 127.0.0.1), nobody uses, replaces or removes another's connection by any surface, shared
connections are an operator's, and every credential action is audited with who acted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from tests.surfaces.mcp.conftest import ENVELOPE, MODERN
from toolbridge import Hub, Principal
from toolbridge.connectors import Invocation
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
from toolbridge.errors import ConnectRequired
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio
BASE = "http://toolbridge.test"
AGENTS = {"alice": ["gh.*", "crm.*"], "bob": ["gh.*", "crm.*"], "carol": ["gh.*"], "ops": ["*"]}


@dataclass
class Upstream:
    url: str
    tokens: list[str]
    """The bearer token of every request, as the upstream saw it (the hub redacts echoed secrets)."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    seen: list[str] = []

    async def me(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        return JSONResponse({"request": len(seen)})

    with uvicorn_thread(Starlette(routes=[Route("/me", me)]), loopback_socket()) as server:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        yield Upstream(f"http://{host}:{port}/me", seen)


@dataclass
class World:
    hub: Hub
    http: httpx2.AsyncClient
    keys: dict[str, str]
    upstream: Upstream

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def add(self, who: str, connector: str, account: str, secret: str, **extra: Any) -> httpx2.Response:
        body = {"connector": connector, "account": account, "secret": secret, **extra}
        return await self.http.post("/v1/connections", json=body, headers=self.auth(who))

    async def call(self, who: str, tool: str = "gh.me", connection: str | None = None) -> httpx2.Response:
        body: dict[str, Any] = {"arguments": {}}
        if connection is not None:
            body["connection"] = connection
        return await self.http.post(f"/v1/tools/{tool}/call", json=body, headers=self.auth(who))

    async def token_of(self, who: str, tool: str = "gh.me", connection: str | None = None) -> str:
        """The token the upstream received for one REST call by ``who``."""
        called = await self.call(who, tool, connection)
        assert called.status_code == 200, called.text
        assert called.json()["result"] == {"request": len(self.upstream.tokens)}
        return self.upstream.tokens[-1]

    async def mcp_call(self, who: str, connection: str) -> dict[str, Any]:
        meta = {**ENVELOPE, "toolbridge/connection": connection}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "gh.me", "arguments": {}, "_meta": meta}}  # fmt: skip
        headers = {**self.auth(who), "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": MODERN, "mcp-method": "tools/call",
                   "mcp-name": "gh.me"}  # fmt: skip
        response = await self.http.post("/mcp", json=body, headers=headers)
        result: dict[str, Any] = response.json()["result"]
        return result


@pytest.fixture
async def world(upstream: Upstream) -> AsyncIterator[World]:
    client = httpx2.AsyncClient(trust_env=False)
    bindings = {
        "gh": AuthConfig(scheme="bearer", policy="per_user"),
        "crm": AuthConfig(scheme="bearer", policy="per_user_or_shared"),
    }
    hub = Hub(agents=AGENTS)
    hub.credentials = CredentialManager(
        Vault(hub.database, StaticKeys(Keyring(MasterKey.generate()))), bindings, client=client, cache_ttl=0
    )
    hub.credentials.audit = hub.audit

    async def me(invocation: Invocation) -> Any:
        assert invocation.credentials is not None
        return (await client.get(upstream.url, auth=invocation.credentials.auth)).json()

    for connector in bindings:
        hub.tool(me, connector=connector, name="me", read_only=True)
    web = create_app(hub, max_body_bytes=10_000)
    async with web.router.lifespan_context(web), client:
        keys = {name: await hub.agents.create(name) for name in AGENTS}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url=BASE) as http:
            yield World(hub, http, keys, upstream)


async def test_each_agent_calls_with_its_own_account(world: World) -> None:
    assert (await world.add("alice", "gh", "work", "alice-token")).status_code == 201
    assert (await world.add("bob", "gh", "work", "bob-token")).status_code == 201  # same account name
    for who in ("alice", "bob", "alice"):
        assert await world.token_of(who) == f"{who}-token"
    await world.hub.call(Principal.agent("bob", ["gh.*"]), "gh.me")  # in-process: the same rule
    assert world.upstream.tokens[-1] == "bob-token"


async def test_without_an_own_connection_the_error_says_how_to_connect(world: World) -> None:
    await world.add("alice", "gh", "work", "alice-token")
    refused = await world.call("carol")
    assert refused.status_code == 401
    assert "www-authenticate" not in refused.headers  # carol's own key is fine: no challenge for it
    problem = refused.json()
    assert problem["code"] == "connect_required" and "agent:carol" in problem["detail"]
    assert problem["connect"]["path"] == "/v1/connections" and problem["connect"]["body"]["connector"] == "gh"
    assert "--for agent:carol" in problem["connect"]["command"]
    with pytest.raises(ConnectRequired):
        await world.hub.call(Principal.agent("carol", ["gh.*"]), "gh.me")


async def test_alice_cannot_use_replace_or_remove_bobs_connection(world: World) -> None:
    bob = (await world.add("bob", "gh", "bob-main", "bob-token")).json()
    assert bob["owner"] == "agent:bob"
    await world.add("alice", "gh", "alice-main", "alice-token")
    listed = (await world.http.get("/v1/connections", headers=world.auth("alice"))).json()["connections"]
    assert [(c["account"], c["owner"]) for c in listed] == [("alice-main", "agent:alice")]
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/test")]:
        answer = await world.http.request(
            method, f"/v1/connections/{bob['id']}{path}", headers=world.auth("alice")
        )
        assert answer.status_code == 404, (method, path)
    for choice in (bob["id"], "bob-main"):
        assert (await world.call("alice", connection=choice)).json()["code"] == "connect_required"
        over_mcp = await world.mcp_call("alice", choice)
        assert over_mcp["isError"] and "bob-token" not in str(over_mcp)
    replaced = await world.add("alice", "gh", "bob-main", "alice-again")  # her own account of that name
    assert replaced.json()["owner"] == "agent:alice" and replaced.json()["id"] != bob["id"]
    assert await world.token_of("bob", connection="bob-main") == "bob-token"
    assert await world.token_of("alice", connection="bob-main") == "alice-again"
    assert not (await world.mcp_call("bob", "bob-main"))["isError"]
    assert world.upstream.tokens[-1] == "bob-token"
    shared = await world.add("alice", "gh", "x", "y", shared=True)
    assert shared.status_code == 400  # gh is per-user only


async def test_shared_connections_are_the_operators_and_own_ones_win(world: World) -> None:
    refused = await world.add("alice", "crm", "team", "alice-shared", shared=True)
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    team = (await world.add("ops", "crm", "team", "team-token", shared=True)).json()
    assert team["shared"] is True and team["owner"] is None
    assert await world.token_of("alice", "crm.me") == "team-token"
    assert (
        await world.http.delete(f"/v1/connections/{team['id']}", headers=world.auth("alice"))
    ).status_code == 403
    await world.add("alice", "crm", "mine", "alice-crm")
    assert await world.token_of("alice", "crm.me") == "alice-crm"
    assert await world.token_of("bob", "crm.me") == "team-token"
    assert (
        await world.http.delete(f"/v1/connections/{team['id']}", headers=world.auth("ops"))
    ).status_code == 204


async def test_every_credential_action_names_who_acted(world: World) -> None:
    own = (await world.add("alice", "gh", "work", "alice-token")).json()
    await world.http.delete(f"/v1/connections/{own['id']}", headers=world.auth("alice"))
    await world.add("ops", "crm", "team", "team-token", shared=True)
    await world.hub.audit.flush()
    rows = [(r.entry.tool, r.entry.principal) for r in await world.hub.audit.tail(20)]
    assert ("(credentials.add)", "agent:alice") in rows
    assert ("(credentials.remove)", "agent:alice") in rows
    assert ("(credentials.add)", "agent:ops") in rows


async def test_the_manager_keeps_owners_apart(world: World) -> None:
    manager = world.hub.credentials
    assert manager is not None
    await manager.add("gh", "main", Material(secret=Secret("a1")), owner="agent:alice")
    await manager.add("gh", "main", Material(secret=Secret("b1")), owner="agent:bob")
    await manager.add("gh", "main", Material(secret=Secret("a2")), owner="agent:alice")  # replaces hers
    conns = {(c.owner, c.account, c.token_version) for c in await manager.store.find("gh")}
    assert conns == {("agent:alice", "main", 2), ("agent:bob", "main", 1)}


def test_the_documented_worked_example_is_valid_configuration(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "docs" / "credentials.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```yml\n(.*?)```", text, re.S)
    settings = parse_settings(
        block.replace("kind: openapi\n    spec: github.yaml", "kind: python\n    tools: []")
    )
    github = settings.connectors["github"].connections
    assert github is not None and github.policy == "per_user"
    assert set(settings.agents) == {"alice-bot", "bob-bot"}
