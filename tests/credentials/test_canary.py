"""O7: canary secrets stored as credentials never appear in plaintext anywhere after a full scenario.

Searched: every log record (DEBUG, all loggers), audit rows, REST responses (tool outputs and problem
documents, including an upstream that echoes the request's headers and URL), connection listings, and the
database — every table's rows and the raw SQLite files (main and WAL).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx2
import pytest

from tests._leaks import assert_absent, database_files, dump_tables, encoded
from tests.credentials.fakes import api_tool, oauth_config, provider
from toolbridge import CredentialsError, Hub, Principal
from toolbridge._redact import forms, redact_error
from toolbridge.connectors import Invocation
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
from toolbridge.errors import UpstreamStatusError, problem
from toolbridge.resilience import Resilience
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio
BASE = "http://toolbridge.test"


def canary(kind: str) -> str:
    return f"CANARY{kind}{secrets.token_hex(8)}"


class EchoUpstream:
    """Token endpoint issuing canary tokens, and an API that echoes what it receives."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            access, refresh = canary("at"), canary("rt")
            self.issued += [access, refresh]
            return httpx2.Response(
                200, json={"access_token": access, "refresh_token": refresh, "expires_in": 600}
            )
        echoed = {"headers": dict(request.headers), "url": str(request.url)}
        if request.url.path == "/fail":
            return httpx2.Response(401, json={"error": "bad credentials", "you_sent": echoed})
        return httpx2.Response(200, json=echoed)


def tools(client: httpx2.AsyncClient) -> dict[str, Any]:
    async def echo(invocation: Invocation) -> Any:
        assert invocation.credentials is not None
        return (await client.get("https://api.test/echo", auth=invocation.credentials.auth)).json()

    async def fail(invocation: Invocation) -> Any:
        assert invocation.credentials is not None
        response = await client.get("https://api.test/fail", auth=invocation.credentials.auth)
        raise UpstreamStatusError(
            "GET /fail returned 401", upstream_status=response.status_code, body=response.text
        )

    return {"echo": echo, "fail": fail}


async def test_no_canary_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = EchoUpstream()
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(upstream.handler))
    planted = {
        "client_secret": canary("cs"),
        "api_key": canary("key"),
        "password": canary("pw"),
        "header": canary("hdr"),
    }
    bindings = {
        "gh": oauth_config(
            client_secret=Secret(planted["client_secret"]), redirect_uri=f"{BASE}/v1/connections/callback"
        ),
        "svc": AuthConfig(scheme="api_key", name="api_key", location="query"),
        "legacy": AuthConfig(scheme="basic", username="admin"),
        "hdr": AuthConfig(scheme="header", templates={"X-Token": "tok {token}"}),
    }
    clock = [1_000_000.0]
    url = f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    hub = Hub(database=url, agents={"admin": ["*"]}, resilience=Resilience(sleep=_no_wait))
    manager = CredentialManager(
        Vault(hub.database, StaticKeys(Keyring(MasterKey.generate()))),
        bindings,
        client=client,
        clock=lambda: clock[0],
    )
    hub.credentials, manager.audit = manager, hub.audit
    for connector in bindings:
        for name, fn in tools(client).items():
            hub.tool(fn, connector=connector, name=name, read_only=True)
    web = create_app(hub, max_body_bytes=100_000)
    seen: list[str] = []
    async with web.router.lifespan_context(web), client:
        key = await hub.agents.create("admin")
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url=BASE) as http:
            for connector, secret in (
                ("svc", planted["api_key"]),
                ("legacy", planted["password"]),
                ("hdr", json.dumps({"token": planted["header"]})),
            ):
                added = await http.post(
                    "/v1/connections", json={"connector": connector, "secret": secret}, headers=auth
                )
                assert added.status_code == 201
                seen.append(added.text)
            started = await http.post("/v1/connections/connect", json={"connector": "gh"}, headers=auth)
            state = parse_qs(urlsplit(started.json()["authorization_url"]).query)["state"][0]
            seen.append(started.text)
            seen.append(
                (await http.get("/v1/connections/callback", params={"code": "c", "state": state})).text
            )
            for _ in range(2):
                for connector in bindings:
                    for tool in ("echo", "fail"):
                        response = await http.post(f"/v1/tools/{connector}.{tool}/call", headers=auth)
                        seen.append(response.text)
                        assert response.status_code == (200 if tool == "echo" else 401), response.text
                clock[0] += 590  # inside the refresh skew: the next round refreshes gh proactively
            seen.append((await http.get("/v1/connections", headers=auth)).text)
            seen.append((await http.get("/v1/calls?limit=500", headers=auth)).text)
        await hub.audit.flush()
        audit = [json.dumps(r.as_dict(), default=str) for r in await hub.audit.tail(1000)]
        tables = await dump_tables(hub.database.transaction())
    assert len(upstream.issued) >= 4, "connect and at least one refresh issued canary tokens"
    assert "[redacted]" in "".join(seen), "the echoing upstream was redacted, not silent"
    corpus = "\n".join([caplog.text, *seen, *audit, tables])
    secrets_planted = [*planted.values(), *upstream.issued]
    assert_absent(secrets_planted, corpus, await database_files(tmp_path), forms=_forms, what="a canary")


async def _no_wait(_seconds: float) -> None:
    return None


def _forms(value: str) -> list[str]:
    return [*encoded(value), *encoded(f"admin:{value}")]


async def test_a_token_refreshed_after_a_401_is_redacted_from_the_retried_answer(tmp_path: Path) -> None:
    """The call's secrets were read before the call: the token a 401's refresh brought, which the retried
    request carried, came back unredacted from an upstream that echoes it (tests/e2e/test_secret_canaries.py
    found it)."""
    upstream, first = EchoUpstream(), canary("at")

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.headers.get("authorization") == f"Bearer {first}":
            return httpx2.Response(401, json={"error": "expired"})
        return upstream.handler(request)

    tokens = TokenSet(Secret(first), Secret(canary("rt")), expires_at=time.time() + 3600)
    async with echoing_hub(tmp_path, handler, oauth_config(), Material(tokens=tokens)) as hub:
        result = await hub.call(Principal.local(), "svc.echo")
    assert len(upstream.issued) == 2, "the 401 refreshed the token"
    assert "[redacted]" in json.dumps(result.value)
    assert_absent([first, *upstream.issued], json.dumps(result.value), forms=encoded, what="a token")


async def test_the_password_half_of_a_user_password_secret_is_redacted(tmp_path: Path) -> None:
    """A basic secret given as ``user:password``: an upstream naming the password alone."""
    user, password = canary("user"), canary("pw")

    def handler(request: httpx2.Request) -> httpx2.Response:
        decoded = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode()
        return httpx2.Response(200, json=dict(zip(("user", "password"), decoded.split(":"), strict=True)))

    material = Material(secret=Secret(f"{user}:{password}"))
    async with echoing_hub(tmp_path, handler, AuthConfig(scheme="basic"), material) as hub:
        result = await hub.call(Principal.local(), "svc.echo")
    assert result.value == {"user": user, "password": "[redacted]"}  # a user name is no secret


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_a_token_endpoint_quoting_the_refused_request_is_redacted(tmp_path: Path, method: str) -> None:
    """A refused refresh whose ``error_description`` quotes the request — refresh token and client secret —
    reached the caller's error, the connection's stored reason and the event log (the e2e test found it)."""
    client_secret, access, refresh = canary("cs"), canary("at"), canary("rt")

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            quoted = f"refused {request.content.decode()} from {request.headers.get('authorization')}"
            return httpx2.Response(400, json={"error": "invalid_grant", "error_description": quoted})
        return httpx2.Response(401)

    binding = AuthConfig(
        scheme="oauth2",
        provider=dataclasses.replace(provider(), token_auth_method=method),
        client_id="cid",
        client_secret=Secret(client_secret),
    )
    tokens = Material(tokens=TokenSet(Secret(access), Secret(refresh), expires_at=time.time() + 3600))
    async with echoing_hub(tmp_path, handler, binding, tokens) as hub:
        with pytest.raises(CredentialsError) as info:
            await hub.call(Principal.local(), "svc.echo")
        tables = await dump_tables(hub.database.transaction())
    said = f"{info.value.message} {info.value.hint}"
    assert "[redacted]" in said
    assert_absent(
        [refresh, client_secret], f"{said}\n{tables}", forms=lambda v: [*encoded(v), *encoded(f"cid:{v}")]
    )


@asynccontextmanager
async def echoing_hub(
    tmp_path: Path,
    handler: Callable[[httpx2.Request], httpx2.Response],
    binding: AuthConfig,
    material: Material,
) -> AsyncIterator[Hub]:
    """A hub whose tool ``svc.echo`` GETs ``handler``'s answer, with ``material`` as its connection."""
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    hub = Hub(database=f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}", resilience=Resilience(sleep=_no_wait))
    vault = Vault(hub.database, StaticKeys(Keyring(MasterKey.generate())))
    hub.credentials = CredentialManager(vault, {"svc": binding}, client=client)
    hub.tool(api_tool(client, "https://api.test/echo"), connector="svc", name="echo", read_only=True)
    async with hub, client:
        await hub.credentials.add("svc", "default", material)
        yield hub


def _respelled(secret: str) -> dict[str, str]:
    """``secret`` as a careless upstream might quote it: hex in either case, and in other letter cases."""
    raw = secret.encode()
    return {
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "upper": secret.upper(),
        "lower": secret.lower(),
        "swapped": secret.swapcase(),
        "quoted upper": quote(secret, safe="").upper(),
    }


@pytest.mark.parametrize(
    ("binding", "where"),
    [
        (AuthConfig(scheme="api_key", name="X-Api-Key", location="header"), "header"),
        (AuthConfig(scheme="api_key", name="api_key", location="query"), "query"),
        (AuthConfig(scheme="bearer"), "bearer"),
    ],
)
async def test_a_secret_echoed_in_hex_or_another_letter_case_is_redacted(
    tmp_path: Path, binding: AuthConfig, where: str
) -> None:
    """An upstream quoting the key in hex (lower and upper) or upper-cased passed the masking: the key
    reached tool results and problem documents' ``upstream_body`` (found by an outside secrets probe)."""
    secret = canary("Key") + "-Mixed/Case+"

    def sent(request: httpx2.Request) -> str:
        if where == "query":
            return request.url.params["api_key"]
        if where == "header":
            return request.headers["x-api-key"]
        return request.headers["authorization"].removeprefix("Bearer ")

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=_respelled(sent(request)))

    async with echoing_hub(tmp_path, handler, binding, Material(secret=Secret(secret))) as hub:
        result = await hub.call(Principal.local(), "svc.echo")
    said = json.dumps(result.value)
    assert said.count("[redacted]") == len(_respelled(secret)), said
    assert_absent([secret], said, forms=lambda v: [*encoded(v), *_respelled(v).values()], what="a key")
    error = UpstreamStatusError(
        "GET /echo returned 500", upstream_status=500, body=json.dumps(_respelled(secret))
    )
    redact_error(error, forms([secret]))  # what the hub does to a call's error before it is answered
    document = json.dumps(problem(error))
    assert "[redacted]" in document
    assert_absent([secret], document, forms=lambda v: list(_respelled(v).values()), what="a key")
