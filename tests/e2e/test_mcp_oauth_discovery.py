"""``toolbridge connect`` for an OAuth-protected MCP upstream, against real servers on 127.0.0.1.

oidc-provider (dynamic client registration, RFC 8707 resource indicators, JWT access tokens) protects an
upstream built on the official MCP SDK (RFC 9728 metadata, 401 challenges, JWKS-checked tokens). The
toolbridge.yaml names only the upstream's URL and ``scheme: oauth2``: ``toolbridge connect`` discovers the
authorization server, registers itself as a client, runs PKCE with ``resource``, and stores the
connection; the hub then calls the upstream tool with it, refreshes it on expiry and after a 401, never
sends the agent's own key upstream, and leaves no secret in logs, audit, responses or the database.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest

from tests._leaks import assert_absent, database_files, dump_tables
from tests._patience import patience
from tests.e2e.mcp_oauth import SCOPE, Upstream, protected_upstream
from tests.e2e.oidc import CLIENT_SECRET, ROOT, OidcServer, authorize, expire
from toolbridge import Hub, Principal
from toolbridge.connectors.mcp import McpConnector
from toolbridge.credentials import ConnectFlow, KeyFile
from toolbridge.errors import ConfigurationError
from toolbridge.surfaces.app import create_app

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]
LOCAL = Principal.local()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[OidcServer, Upstream]]:
    with protected_upstream(tmp_path) as found:
        yield found


def write_config(folder: Path, server: OidcServer, upstream: Upstream, **connections: Any) -> Path:
    config = {
        "server": {"database": f"sqlite+aiosqlite:///{folder / 'tb.db'}"},
        "credentials": {"key_file": "master.key", "oauth_allow_loopback": True},
        "agents": {"bot": {"scopes": ["*"]}},
        "connectors": {
            "remote": {
                "kind": "mcp",
                "url": upstream.url,
                "approve": "all-on-first-connect",
                "connections": {
                    "scheme": "oauth2",
                    "redirect_uri": server.redirect_uri,
                    "refresh_skew": 5,
                    **connections,
                },
            }
        },
    }
    path = folder / "toolbridge.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    KeyFile(folder / "master.key").create()
    return path


async def cli_connect(config: Path, server: OidcServer, account: str, login: str) -> tuple[str, str]:
    """Run ``toolbridge connect`` as a person would; sign in when it prints the URL. (URL, its output)"""
    command = [sys.executable, "-m", "toolbridge", "connect", "remote", "-a", account, "-c", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "500"}
    env.pop("TOOLBRIDGE_MASTER_KEY", None)
    output = ""
    async with await anyio.open_process(command, env=env, cwd=config.parent) as process:
        assert process.stdout is not None and process.stderr is not None
        with anyio.fail_after(patience(60)):
            async for chunk in process.stdout:
                output += chunk.decode()
                if "\nhttp" in output:
                    break
            else:
                errors = b"".join([chunk async for chunk in process.stderr]).decode()
                raise AssertionError(f"toolbridge connect printed no URL: {output}{errors}")
            url = output.split("\nhttp", 1)[1].split("\n", 1)[0]
            url = "http" + url.strip()
            callback = await authorize(url, server.redirect_uri, login=login)
            async with httpx2.AsyncClient(trust_env=False) as browser:
                page = await browser.get(callback)
            assert page.status_code == 200, page.text
            async for chunk in process.stdout:
                output += chunk.decode()
            async for chunk in process.stderr:
                output += chunk.decode()
            assert await process.wait() == 0, output
    return url, output


async def until_tools(hub: Hub, name: str) -> None:
    connector = hub.connector("remote")
    assert isinstance(connector, McpConnector)
    with anyio.fail_after(patience(20)):
        while name not in hub.catalog or not connector.connected:  # noqa: ASYNC110 - bounded poll
            await anyio.sleep(0.02)  # the connector retries until a connection exists


async def stored_tokens(hub: Hub, ident: str) -> list[str]:
    assert hub.credentials is not None
    _, material = await hub.credentials.store.load(ident)
    assert material.tokens is not None and material.tokens.refresh_token is not None
    return [material.tokens.access_token.reveal(), material.tokens.refresh_token.reveal()]


async def test_connect_discovers_registers_and_the_hub_calls_refreshes_and_keeps_secrets(
    servers: tuple[OidcServer, Upstream], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    oidc, upstream = servers
    config = write_config(tmp_path, oidc, upstream)

    url, cli_output = await cli_connect(config, oidc, "default", "alice")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{oidc.issuer}/auth?")
    assert query["resource"] == [upstream.url] and query["scope"] == [SCOPE]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    registrations = [e for e in oidc.events() if e["kind"] == "registration"]
    assert [e["status"] for e in registrations] == [201]
    assert query["client_id"] != ["toolbridge"], "the client id is the one the server registered"
    assert "connected remote as default" in cli_output

    hub = Hub.from_file(config)
    web = create_app(hub)
    seen: list[str] = [cli_output]
    async with web.router.lifespan_context(web):
        assert hub.credentials is not None
        agent_key = await hub.agents.create("bot")
        auth = {"Authorization": f"Bearer {agent_key}"}
        await until_tools(hub, "remote.whoami")
        [conn] = await hub.credentials.store.find("remote")
        secrets_seen = await stored_tokens(hub, conn.id)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url="http://tb") as http:

            async def call() -> str:
                response = await http.post(
                    "/v1/tools/remote.whoami/call", json={"arguments": {}}, headers=auth
                )
                seen.append(response.text)
                assert response.status_code == 200, response.text
                return str(response.json()["result"]["content"][0]["text"])

            assert await call() == "subject=alice"
            assert oidc.token_requests("refresh_token") == []

            await expire(hub, conn.id)  # proactive refresh, with the stored client and resource
            assert await call() == "subject=alice"
            assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200]
            secrets_seen += await stored_tokens(hub, conn.id)

            upstream.verifier.refused.add(secrets_seen[-2])  # the upstream stops taking the token: 401
            assert await call() == "subject=alice"
            assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200, 200]
            secrets_seen += await stored_tokens(hub, conn.id)
            assert upstream.bearer_tokens()[-1] == secrets_seen[-2], "the retry carried the new token"

            flow = ConnectFlow(hub.credentials)  # a second account reuses the registered client
            started = await flow.start("remote", "bob")
            bob = await flow.complete(await authorize(started.url, oidc.redirect_uri, login="bob"))
            assert parse_qs(urlsplit(started.url).query)["client_id"] == query["client_id"]
            assert [e["kind"] for e in oidc.events()].count("registration") == 1
            secrets_seen += await stored_tokens(hub, bob.id)
            as_bob = await hub.call(LOCAL, "remote.whoami", {}, connection="bob")
            assert as_bob.value["content"][0]["text"] == "subject=bob"

            with pytest.raises(ConfigurationError, match="refused to register") as refused:
                await flow.start("remote", "carol", redirect_uri=oidc.redirect_uri + "#fragment")
            assert "invalid_redirect_uri" in refused.value.message and "client_id" in str(refused.value.hint)
            assert await call() == "subject=alice", "a refused registration leaves the stored client alone"
            seen.append((await http.get("/v1/connections", headers=auth)).text)
            seen.append((await http.get("/v1/calls?limit=500", headers=auth)).text)
        await hub.audit.flush()
        audit = [json.dumps(r.as_dict(), default=str) for r in await hub.audit.tail(1000)]
        tables = await dump_tables(hub.database.transaction())

    received = json.dumps(upstream.seen)
    assert agent_key not in received, "the agent's own key never goes upstream"
    assert all(
        t in upstream.verifier.accepted or t in upstream.verifier.refused for t in upstream.bearer_tokens()
    )
    corpus = "\n".join([caplog.text, *seen, *audit, tables])
    assert len(set(secrets_seen)) == len(secrets_seen) >= 8
    assert_absent(secrets_seen, corpus, await database_files(tmp_path), what="a token")


async def test_without_registration_the_error_names_the_fix_and_a_configured_client_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TB_TEST_CLIENT_SECRET", CLIENT_SECRET)
    with protected_upstream(tmp_path, registration=False) as (oidc, upstream):
        config = write_config(tmp_path, oidc, upstream)
        hub = Hub.from_file(config)
        async with hub:
            assert hub.credentials is not None
            with pytest.raises(ConfigurationError, match="offers no dynamic client registration") as info:
                await ConnectFlow(hub.credentials).start("remote", "alice")
            assert "connections.client_id" in str(info.value.hint) and oidc.redirect_uri in str(
                info.value.hint
            )

        (tmp_path / "master.key").unlink()
        config = write_config(
            tmp_path, oidc, upstream, client_id="toolbridge", client_secret="env:TB_TEST_CLIENT_SECRET"
        )
        (tmp_path / "tb.db").unlink()
        hub = Hub.from_file(config)
        async with hub:
            assert hub.credentials is not None
            flow = ConnectFlow(hub.credentials)
            started = await flow.start("remote", "alice")
            assert parse_qs(urlsplit(started.url).query)["client_id"] == ["toolbridge"]
            conn = await flow.complete(await authorize(started.url, oidc.redirect_uri))
            await until_tools(hub, "remote.whoami")
            await expire(hub, conn.id)
            result = await hub.call(LOCAL, "remote.whoami", {})
            assert result.value["content"][0]["text"] == "subject=alice"
            assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200]
            tables = await dump_tables(hub.database.transaction())
        files = await database_files(tmp_path)
    assert [e for e in oidc.events() if e["kind"] == "registration"] == []
    basic = base64.b64encode(f"toolbridge:{CLIENT_SECRET}".encode()).decode()
    assert_absent([CLIENT_SECRET, basic], "\n".join([caplog.text, tables]), files, what="the client secret")
