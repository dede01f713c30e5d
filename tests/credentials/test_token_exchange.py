"""RFC 8693 token exchange: each caller's identity token (its own connection to the identity connector) is
exchanged for an upstream token of its own, cached per user until it expires, then exchanged again. RFC
7523 per user: a service account's assertion whose ``sub`` names the caller, likewise cached per user.

A small authorization server on 127.0.0.1 implements the token-exchange grant as RFC 8693 §2 says
(client authentication, subject token and its type, audience); the API beside it records the bearer token
of every call, so the test checks at the upstream which person's token went out.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
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
from toolbridge.credentials._jwt import ServiceAccount
from toolbridge.credentials._providers import ProviderDef
from toolbridge.errors import ConfigurationError, ConnectRequired, CredentialsError

pytestmark = pytest.mark.anyio
IDENTITIES = {"idp-alice": "alice", "idp-bob": "bob"}
AUDIENCE = "https://crm.test"
CLIENT = ("crm-client", "crm-secret")


@dataclass
class Servers:
    base: str
    exchanges: list[dict[str, str]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)


_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


def _asserted(form: dict[str, Any], state: Servers) -> JSONResponse:
    """RFC 7523 §3: a signed assertion from the service account, for our token endpoint, naming a user."""
    try:
        claims = jwt.decode(str(form.get("assertion")), RSAKey.import_key(PEM)).claims
    except ValueError:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    if claims.get("iss") != "gateway@corp.test" or claims.get("aud") != f"{state.base}/token":
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    state.exchanges.append({"grant_type": "jwt-bearer", "sub": str(claims.get("sub"))})
    token = f"dwd:{claims.get('sub')}:{len(state.exchanges)}"
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 60})


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    state = Servers("")

    async def token(request: Request) -> JSONResponse:
        form = dict(await request.form())
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _asserted(form, state)
        basic = base64.b64encode(":".join(CLIENT).encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        person = IDENTITIES.get(str(form.get("subject_token")))
        right_type = form.get("subject_token_type") == "urn:ietf:params:oauth:token-type:access_token"
        if person is None or not right_type or form.get("audience") != AUDIENCE:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        state.exchanges.append({k: str(v) for k, v in form.items()})
        issued = {"access_token": f"crm:{person}:{len(state.exchanges)}", "token_type": "Bearer"}
        return JSONResponse(
            {**issued, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 60}
        )

    async def me(request: Request) -> JSONResponse:
        state.seen.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        return JSONResponse({"calls": len(state.seen)})

    app = Starlette(routes=[Route("/token", token, methods=["POST"]), Route("/me", me)])
    with uvicorn_thread(app, loopback_socket()) as server:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        state.base = f"http://{host}:{port}"
        yield state


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    hub: Hub
    manager: CredentialManager
    servers: Servers
    clock: Clock

    async def token_used_by(self, name: str, tool: str = "crm.me") -> str:
        await self.hub.call(Principal.agent(name, ["*"]), tool)
        return self.servers.seen[-1]


def exchange_binding(base: str, **changes: Any) -> AuthConfig:
    provider = ProviderDef(
        name="crm-sts",
        display_name="CRM token service",
        scope_separator=" ",
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        token_auth_method="client_secret_basic",
    )
    values: dict[str, Any] = {
        "scheme": "token_exchange",
        "provider": provider,
        "client_id": CLIENT[0],
        "client_secret": Secret(CLIENT[1]),
        "subject_connector": "corp",
        "audience": AUDIENCE,
        "policy": "per_user",
        "refresh_skew": 5,
    }
    return AuthConfig(**{**values, **changes})


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    servers.exchanges.clear()
    client = httpx2.AsyncClient(trust_env=False)
    clock = Clock()
    account = ServiceAccount("gateway@corp.test", Secret(PEM), f"{servers.base}/token")
    bindings = {
        "corp": AuthConfig(scheme="bearer", policy="per_user"),  # each person's identity token
        "crm": exchange_binding(servers.base),
        "mail": exchange_binding(
            servers.base,
            scheme="jwt_bearer",
            service_account=account,
            subject="{name}@corp.test",
            subject_connector=None,
            audience=None,
            client_id=None,
            client_secret=None,
        ),
    }
    hub = Hub()
    manager = CredentialManager(
        Vault(hub.database, StaticKeys(Keyring(MasterKey.generate()))),
        bindings,
        client=client,
        clock=clock,
        cache_ttl=0,
    )
    hub.credentials = manager

    async def me(invocation: Invocation) -> Any:
        assert invocation.credentials is not None
        return (await client.get(f"{servers.base}/me", auth=invocation.credentials.auth)).json()

    hub.tool(me, connector="crm", name="me", read_only=True)
    hub.tool(me, connector="mail", name="me", read_only=True)
    async with hub, client:
        for subject, person in IDENTITIES.items():
            await manager.add("corp", "default", Material(secret=Secret(subject)), owner=f"agent:{person}")
        yield World(hub, manager, servers, clock)


async def test_each_person_gets_an_exchanged_token_of_their_own_cached_until_expiry(world: World) -> None:
    assert await world.token_used_by("alice") == "crm:alice:1"
    assert await world.token_used_by("bob") == "crm:bob:2"
    assert await world.token_used_by("alice") == "crm:alice:1"  # cached: no new exchange
    assert len(world.servers.exchanges) == 2
    assert {e["subject_token"] for e in world.servers.exchanges} == {"idp-alice", "idp-bob"}
    world.clock.now += 56  # within refresh_skew (5 s) of the 60 s expiry
    assert await world.token_used_by("alice") == "crm:alice:3"  # exchanged again
    assert await world.token_used_by("bob") == "crm:bob:4"
    assert len(world.servers.exchanges) == 4
    stored = {(c.owner, c.account) for c in await world.manager.store.find("crm")}
    assert stored == {("agent:alice", "default"), ("agent:bob", "default")}  # the cache, per person


async def test_without_an_identity_the_caller_is_told_to_connect_it(world: World) -> None:
    with pytest.raises(ConnectRequired) as info:
        await world.hub.call(Principal.agent("carol", ["crm.*"]), "crm.me")
    assert "'corp'" in info.value.message and "--for agent:carol" in str(info.value.connect["command"])
    assert world.servers.exchanges == []


async def test_a_refused_exchange_is_a_credentials_error(world: World) -> None:
    await world.manager.add("corp", "default", Material(secret=Secret("idp-forged")), owner="agent:mallory")
    calls = len(world.servers.seen)
    with pytest.raises(CredentialsError, match="invalid_grant"):
        await world.hub.call(Principal.agent("mallory", ["crm.*"]), "crm.me")
    assert len(world.servers.seen) == calls, "the upstream was called without an exchanged token"
    assert await world.manager.store.find("crm") == []  # nothing cached for a refused exchange


def test_token_exchange_needs_an_identity_connector_and_per_user_policy() -> None:
    with pytest.raises(ConfigurationError, match="subject_connector and policy: per_user"):
        exchange_binding("https://sts.test", policy="shared")
    with pytest.raises(ConfigurationError, match="subject_connector"):
        exchange_binding("https://sts.test", subject_connector=None)


async def test_a_per_user_assertion_names_the_caller_and_is_cached_per_user(world: World) -> None:
    assert await world.token_used_by("alice", "mail.me") == "dwd:alice@corp.test:1"
    assert await world.token_used_by("bob", "mail.me") == "dwd:bob@corp.test:2"
    assert await world.token_used_by("alice", "mail.me") == "dwd:alice@corp.test:1"  # cached
    world.clock.now += 56
    assert await world.token_used_by("alice", "mail.me") == "dwd:alice@corp.test:3"
    assert [e["sub"] for e in world.servers.exchanges] == [
        "alice@corp.test",
        "bob@corp.test",
        "alice@corp.test",
    ]


def test_a_per_user_assertion_needs_a_subject_template() -> None:
    with pytest.raises(ConfigurationError, match="subject naming the caller"):
        AuthConfig(
            scheme="jwt_bearer", provider=exchange_binding("https://s.test").provider, policy="per_user"
        )
