"""O7: canary secrets stored as credentials never appear in plaintext anywhere after a full scenario.

Searched: every log record (DEBUG, all loggers), audit rows, REST responses (tool outputs and problem
documents, including an upstream that echoes the request's headers and URL), connection listings, and the
database — every table's rows and the raw SQLite files (main and WAL).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from tests._leaks import assert_absent, database_files, dump_tables, encoded
from tests.credentials.fakes import oauth_config
from toolbridge import Hub
from toolbridge.connectors import Invocation
from toolbridge.credentials import (
    AuthConfig,
    CredentialManager,
    Keyring,
    MasterKey,
    Secret,
    StaticKeys,
    Vault,
)
from toolbridge.errors import UpstreamStatusError
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
