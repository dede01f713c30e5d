"""The connect flow of a discovered MCP upstream: discovery, dynamic client registration, refresh, errors.

The upstream and its authorization server are an in-memory HTTP world (``httpx2.MockTransport``); the
end-to-end test (tests/e2e/test_mcp_oauth_discovery.py) runs the same flow against oidc-provider and an
MCP SDK server.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import anyio
import httpx2
import pytest

from tests._leaks import assert_absent, dump_tables
from toolbridge import Principal
from toolbridge.assembly._hub import build_hub
from toolbridge.credentials import (
    AuthConfig,
    ConnectFlow,
    CredentialManager,
    Keyring,
    MasterKey,
    Secret,
    StaticKeys,
    Vault,
)
from toolbridge.credentials._mcp_connect import load_discovered
from toolbridge.errors import ConfigurationError, NotConnected, ToolbridgeError, UpstreamError
from toolbridge.settings import parse_settings
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio
UPSTREAM = "https://mcp.test/mcp"
REDIRECT = "http://127.0.0.1:8765/callback"
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"
PRM_ROOT = "/.well-known/oauth-protected-resource"
PUBLIC = "93.184.215.14"


def as_metadata(**changes: Any) -> dict[str, Any]:
    return {
        "issuer": "https://auth.test",
        "authorization_endpoint": "https://auth.test/authorize",
        "token_endpoint": "https://auth.test/token",
        "registration_endpoint": "https://auth.test/register",
        "code_challenge_methods_supported": ["S256"],
    } | changes


@dataclass
class World:
    """An MCP upstream protected by an authorization server that registers confidential clients."""

    challenge: str | None = f'Bearer error="invalid_token", resource_metadata="https://mcp.test{PRM_PATH}"'
    documents: dict[str, Any] = field(
        default_factory=lambda: {
            PRM_PATH: {"resource": UPSTREAM, "authorization_servers": ["https://auth.test"]},
            "/.well-known/oauth-authorization-server": as_metadata(),
        }
    )
    registration: tuple[int, dict[str, Any]] | None = None
    registered: list[dict[str, Any]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    token_auth: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    secret: str = field(default_factory=lambda: "CANARYcs" + secrets.token_hex(8))
    registration_token: str = field(default_factory=lambda: "CANARYrat" + secrets.token_hex(8))
    probes: int = 0

    contacted: list[str] = field(default_factory=list)
    """The servers requests were for (their ``Host``: a pinned request's URL carries the address)."""
    connected: list[str] = field(default_factory=list)
    """The addresses or names the requests' URLs named (what a socket would connect to)."""
    addresses: dict[str, str] = field(default_factory=dict)
    """What the injected resolver answers per host (else a public address)."""
    rebind: set[str] = field(default_factory=set)
    """Hosts whose first lookup answers the public address and every later one 127.0.0.1."""
    lookups: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host in self.rebind and self.lookups.count(host) > 1:
            return ["127.0.0.1"]
        return [self.addresses.get(host, PUBLIC)]

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.contacted.append(request.headers["host"])
        self.connected.append(request.url.host)
        path = request.url.path
        if request.method == "POST" and str(request.url) == UPSTREAM:
            self.probes += 1
            assert "authorization" not in request.headers, "the probe carries no credentials"
            headers = {"WWW-Authenticate": self.challenge} if self.challenge else {}
            return httpx2.Response(401, headers=headers)
        if path == "/register":
            return self._register(json.loads(request.content))
        if path == "/token":
            self.token_forms.append(dict(parse_qsl(request.content.decode())))
            self.token_auth.append(request.headers.get("authorization", ""))
            access, refresh = "CANARYat" + secrets.token_hex(8), "CANARYrt" + secrets.token_hex(8)
            self.issued += [access, refresh]
            return httpx2.Response(
                200, json={"access_token": access, "refresh_token": refresh, "expires_in": 600}
            )
        doc = self.documents.get(path)
        return httpx2.Response(200, json=doc) if doc is not None else httpx2.Response(404)

    def _register(self, body: dict[str, Any]) -> httpx2.Response:
        self.registered.append(body)
        if self.registration is not None:
            return httpx2.Response(self.registration[0], json=self.registration[1])
        return httpx2.Response(
            201,
            json={
                "client_id": f"client-{len(self.registered)}",
                "client_secret": self.secret,
                "client_secret_expires_at": 0,
                "token_endpoint_auth_method": "client_secret_basic",
                "registration_access_token": self.registration_token,
                "redirect_uris": body["redirect_uris"],
            },
        )


@asynccontextmanager
async def manager_for(
    world: World,
    url: str,
    keys: Keyring,
    *,
    upstream: str = UPSTREAM,
    transport: httpx2.AsyncBaseTransport | None = None,
    **binding: Any,
) -> AsyncIterator[CredentialManager]:
    client = httpx2.AsyncClient(transport=transport or httpx2.MockTransport(world.handler))
    config = AuthConfig(scheme="oauth2", discover=upstream, redirect_uri=REDIRECT, **binding)
    database = Database(url)
    vault = Vault(database, StaticKeys(keys))
    manager = CredentialManager(vault, {"remote": config}, client=client, resolver=world.resolve)
    async with database, manager, client:
        yield manager


async def connect(manager: CredentialManager, account: str = "default") -> tuple[str, str]:
    flow = ConnectFlow(manager)
    started = await flow.start("remote", account)
    state = parse_qs(urlsplit(started.url).query)["state"][0]
    connection = await flow.complete(f"{REDIRECT}?code=good&state={state}")
    return started.url, connection.id


async def test_a_registered_client_is_sealed_reused_and_refreshes_in_another_process(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world, keys = World(), Keyring(MasterKey.generate())
    async with manager_for(world, sqlite_url, keys) as manager:
        url, ident = await connect(manager)
        query = parse_qs(urlsplit(url).query)
        assert query["client_id"] == ["client-1"] and query["resource"] == [UPSTREAM]
        assert query["code_challenge_method"] == ["S256"] and "scope" not in query
        assert world.registered == [
            {
                "client_name": "toolbridge",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        ]
        exchange = world.token_forms[-1]
        assert exchange["grant_type"] == "authorization_code" and exchange["resource"] == UPSTREAM
        assert "client_secret" not in exchange, "client_secret_basic: the secret goes in the header"
        assert (
            world.token_auth[-1] == "Basic " + base64.b64encode(f"client-1:{world.secret}".encode()).decode()
        )
        await connect(manager, "bob")
        assert len(world.registered) == 1, "the stored registration is reused"

    async with manager_for(world, sqlite_url, keys) as other:  # another process: same database and keys
        resolved = await other.resolve("remote", Principal.local(), None)
        assert resolved.refresh is not None
        await resolved.refresh()
        refresh = world.token_forms[-1]
        assert refresh["grant_type"] == "refresh_token" and refresh["resource"] == UPSTREAM
        assert world.token_auth[-1].endswith(base64.b64encode(f"client-1:{world.secret}".encode()).decode())
        assert other.bindings["remote"].client_id == "client-1" and world.probes == 2
        tables = await dump_tables(other.database_transaction())
    assert ident in tables
    secrets_seen = (world.secret, world.registration_token, *world.issued)
    assert_absent(secrets_seen, "\n".join([tables, caplog.text]))
    assert "client-1" in caplog.text, "the client id (not a secret) is logged at registration"


async def test_a_refresh_in_another_process_checks_the_servers_metadata_again(sqlite_url: str) -> None:
    """The authorization server (a remote party's choice) may change its metadata after the connect: a
    process that reads it afresh to refresh refuses a token endpoint on a metadata address, unsent."""
    world, keys = World(), Keyring(MasterKey.generate())
    async with manager_for(world, sqlite_url, keys) as manager:
        await connect(manager)
    world.documents["/.well-known/oauth-authorization-server"] = as_metadata(
        token_endpoint="https://in.test/t"
    )
    world.addresses["in.test"] = "169.254.169.254"
    forms = len(world.token_forms)
    async with manager_for(world, sqlite_url, keys) as other:
        resolved = await other.resolve("remote", Principal.local(), None)
        assert resolved.refresh is not None
        with pytest.raises(UpstreamError, match="is not on a public address"):
            await resolved.refresh()
    assert "in.test" not in world.contacted and len(world.token_forms) == forms


async def test_without_a_challenge_the_root_metadata_and_the_challenge_scope_are_used(
    sqlite_url: str,
) -> None:
    world = World(challenge='Bearer scope="tools:call tools:read"')
    world.documents = {
        PRM_ROOT: {"resource": "https://mcp.test", "authorization_servers": ["https://auth.test"]},
        "/.well-known/oauth-authorization-server": as_metadata(),
    }
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate())) as manager:
        url, _ = await connect(manager)
    query = parse_qs(urlsplit(url).query)
    assert query["scope"] == ["tools:call tools:read"] and query["resource"] == ["https://mcp.test"]


async def test_configured_client_id_scopes_and_resource_win(sqlite_url: str) -> None:
    world = World()
    async with manager_for(
        world, sqlite_url, Keyring(MasterKey.generate()), client_id="mine", scopes=("x",)
    ) as manager:
        url, _ = await connect(manager)
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["mine"] and query["scope"] == ["x"] and world.registered == []
    assert world.token_forms[-1]["client_id"] == "mine"


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize(
    ("supported", "method"),
    [
        pytest.param(None, "client_secret_basic", id="absent"),
        pytest.param(["client_secret_post", "client_secret_basic"], "client_secret_basic", id="both"),
        pytest.param(["client_secret_post"], "client_secret_post", id="post-only"),
        pytest.param(["private_key_jwt"], "client_secret_basic", id="neither"),
    ],
)
async def test_a_configured_confidential_client_prefers_basic_authentication(
    sqlite_url: str, supported: list[str] | None, method: str
) -> None:
    world = World()
    if supported is not None:
        world.documents["/.well-known/oauth-authorization-server"] = as_metadata(
            token_endpoint_auth_methods_supported=supported
        )
    secret = Secret("CANARYconf" + secrets.token_hex(8))
    async with manager_for(
        world, sqlite_url, Keyring(MasterKey.generate()), client_id="mine", client_secret=secret
    ) as manager:
        await connect(manager)
        assert manager.bindings["remote"].provider is not None
        assert manager.bindings["remote"].provider.token_auth_method == method
    form, header = world.token_forms[-1], world.token_auth[-1]
    assert world.registered == []
    if method == "client_secret_basic":
        assert header == _basic("mine", secret.reveal()) and "client_secret" not in form
    else:
        assert header == "" and form["client_id"] == "mine" and form["client_secret"] == secret.reveal()


async def test_an_abandoned_connect_does_not_replace_the_client_another_connect_uses(sqlite_url: str) -> None:
    other_redirect = "http://127.0.0.1:9999/callback"
    world = World()
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate())) as manager:
        await connect(manager)  # client-1 is registered and stored
        flow = ConnectFlow(manager)
        first = await flow.start("remote", "alice")
        second = await flow.start("remote", "bob", redirect_uri=other_redirect)  # registers client-2
        assert parse_qs(urlsplit(second.url).query)["client_id"] == ["client-2"]
        stored = await load_discovered(manager.vault, "remote")
        assert stored is not None and stored.client_id == "client-1", "not stored before the exchange"
        state = parse_qs(urlsplit(first.url).query)["state"][0]
        await flow.complete(f"{REDIRECT}?code=good&state={state}")
        assert world.token_auth[-1] == _basic("client-1", world.secret), "exchanged as the requesting client"
        stored = await load_discovered(manager.vault, "remote")
        assert stored is not None and stored.client_id == "client-1"
        state = parse_qs(urlsplit(second.url).query)["state"][0]
        await flow.complete(f"{other_redirect}?code=good&state={state}")
        assert world.token_auth[-1] == _basic("client-2", world.secret)
        stored = await load_discovered(manager.vault, "remote")
        assert stored is not None and stored.client_id == "client-2" and stored.redirect_uri == other_redirect
        assert manager.bindings["remote"].client_id == "client-2"
        assert await flow.purge() == 0
        assert not [n for n in await manager.vault.names() if n.startswith("oauth-state")]


async def test_concurrent_connects_register_one_client(sqlite_url: str) -> None:
    world = World()
    urls: list[str] = []
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate())) as manager:
        flow = ConnectFlow(manager)

        async def start(account: str) -> None:
            urls.append((await flow.start("remote", account)).url)

        async with anyio.create_task_group() as tg:
            for account in ("a", "b", "c"):
                tg.start_soon(start, account)
        assert len(world.registered) == 1
        assert {parse_qs(urlsplit(u).query)["client_id"][0] for u in urls} == {"client-1"}
        assert await load_discovered(manager.vault, "remote") is None, "stored only once a connect completes"


async def test_an_unconnected_discovered_connector_says_how_to_connect(sqlite_url: str) -> None:
    async with manager_for(World(), sqlite_url, Keyring(MasterKey.generate())) as manager:
        with pytest.raises(NotConnected, match="not connected") as info:
            await manager.resolve("remote", Principal.local(), None)
    assert info.value.hint == "a person must connect it: toolbridge connect remote"


def _without_s256(world: World) -> None:
    world.documents["/.well-known/oauth-authorization-server"] = as_metadata(
        code_challenge_methods_supported=["plain"]
    )


def _http_token_endpoint(world: World) -> None:
    world.documents["/.well-known/oauth-authorization-server"] = as_metadata(
        token_endpoint="http://auth.test/token"
    )


def _no_registration(world: World) -> None:
    doc = as_metadata()
    del doc["registration_endpoint"]
    world.documents["/.well-known/oauth-authorization-server"] = doc


def _refused(world: World) -> None:
    world.registration = (
        400,
        {"error": "invalid_client_metadata", "error_description": "loopback not allowed"},
    )


def _other_resource(world: World) -> None:
    world.documents[PRM_PATH] = {
        "resource": "https://evil.test/mcp",
        "authorization_servers": ["https://a.test"],
    }


def _no_metadata(world: World) -> None:
    world.challenge = None
    world.documents = {}


UPSTREAM_FAULT = 502
"""What the upstream or its authorization server got wrong is no configuration error (HTTP 500)."""


@pytest.mark.parametrize(
    ("change", "upstream", "message", "hint"),
    [
        pytest.param(_no_metadata, UPSTREAM, "HTTP 404", "RFC 9728", id="no-metadata"),
        pytest.param(
            _other_resource, UPSTREAM, "is for 'https://evil.test/mcp'", "RFC 9728", id="other-resource"
        ),
        pytest.param(None, "http://mcp.test/mcp", "must be https", "plain HTTP", id="http-not-loopback"),
        pytest.param(_without_s256, UPSTREAM, "does not advertise PKCE S256", "S256", id="no-s256"),
        pytest.param(
            _http_token_endpoint, UPSTREAM, "token endpoint must be https", "plain HTTP", id="http-as"
        ),
        pytest.param(
            _no_registration, UPSTREAM, "offers no dynamic client registration", "client_id", id="no-dcr"
        ),
        pytest.param(
            _refused,
            UPSTREAM,
            r"refused to register toolbridge as a client: invalid_client_metadata \(loopback not allowed\)",
            "connections.client_id",
            id="dcr-refused",
        ),
    ],
)
async def test_discovery_failures_are_clear(
    sqlite_url: str, change: Any, upstream: str, message: str, hint: str
) -> None:
    world = World()
    if change is not None:
        change(world)
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate()), upstream=upstream) as manager:
        with pytest.raises(ToolbridgeError, match=message) as info:
            await ConnectFlow(manager).start("remote")
        assert await manager.vault.names() == [], "nothing is stored for a failed discovery"
    assert hint in str(info.value.hint)
    operators = change in (None, _no_registration, _refused)  # the configured URL; the fix is a client_id
    assert isinstance(info.value, ConfigurationError if operators else UpstreamError)
    assert operators or info.value.status == UPSTREAM_FAULT
    if change in (_without_s256, _http_token_endpoint):
        assert world.registered == [], "no registration with a server toolbridge refuses"


@pytest.mark.parametrize(
    ("issuer", "addresses", "endpoint"),
    [
        pytest.param("https://169.254.169.254", {}, "", id="metadata-address"),
        pytest.param("https://10.0.0.1", {}, "", id="private-literal"),
        pytest.param("https://auth.test", {"auth.test": "169.254.169.254"}, "", id="name-on-metadata"),
        pytest.param("https://auth.test", {"auth.test": "::ffff:10.0.0.1"}, "", id="name-on-mapped-private"),
        pytest.param("https://auth.test", {"auth.test": "127.0.0.1"}, "", id="name-on-loopback"),
        pytest.param("https://auth.test", {"in.test": "10.1.2.3"}, "token_endpoint", id="private-token"),
        pytest.param("https://auth.test", {"in.test": "10.1.2.3"}, "registration_endpoint", id="private-dcr"),
    ],
)
async def test_oauth_servers_on_private_or_metadata_addresses_are_refused_before_any_request(
    sqlite_url: str, issuer: str, addresses: dict[str, str], endpoint: str
) -> None:
    world = World(addresses=addresses)
    world.documents[PRM_PATH] = {"resource": UPSTREAM, "authorization_servers": [issuer]}
    if endpoint:
        world.documents["/.well-known/oauth-authorization-server"] = as_metadata(
            **{endpoint: "https://in.test/x"}
        )
    async with manager_for(world, sqlite_url, Keyring(MasterKey.generate())) as manager:
        with pytest.raises(UpstreamError, match="is not on a public address"):
            await ConnectFlow(manager).start("remote")
    reached = {"mcp.test"} | ({"auth.test"} if endpoint else set())
    assert set(world.contacted) == reached, "a refused server got a request"
    assert world.registered == []


SETTINGS = """
server: {{database: "sqlite+aiosqlite://"}}
connectors:
  remote:
    kind: mcp
    url: https://mcp.test/mcp
    connections: {{scheme: oauth2{extra}}}
"""


def test_settings_turn_an_mcp_url_with_bare_oauth2_into_discovery() -> None:
    keys = StaticKeys(Keyring(MasterKey.generate()))
    hub = build_hub(parse_settings(SETTINGS.format(extra="")), keys=keys)
    assert hub.credentials is not None and hub.credentials.bindings["remote"].discover == UPSTREAM
    with_provider = SETTINGS.format(extra=", provider: github, client_id: x")
    hub = build_hub(parse_settings(with_provider), keys=keys)
    assert hub.credentials is not None and hub.credentials.bindings["remote"].discover is None
    python = "server: {database: 'sqlite+aiosqlite://'}\nconnectors:\n  p:\n    kind: python\n    tools: []\n"
    with pytest.raises(ConfigurationError, match="needs a provider"):
        build_hub(parse_settings(python + "    connections: {scheme: oauth2}\n"), keys=keys)


def test_the_documented_configuration_discovers() -> None:
    text = (Path(__file__).parents[2] / "docs" / "credentials.md").read_text(encoding="utf-8")
    section = text.split("### MCP authorization discovery", 1)[1]
    block = section.split("```\n", 2)[1]
    settings = parse_settings("server: {database: 'sqlite+aiosqlite://'}\n" + block)
    hub = build_hub(settings, keys=StaticKeys(Keyring(MasterKey.generate())))
    assert hub.credentials is not None
    assert hub.credentials.bindings["remote"].discover == "https://mcp.example.com/mcp"
