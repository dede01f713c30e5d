"""Credentials against a real OAuth server (oidc-provider, OpenID Certified) on 127.0.0.1.

Connect flow with PKCE, calls with the token, proactive refresh, single-flight refresh across two
processes (O1), a lost refresh response (O2), state / redirect / issuer checks (O4, O6), client credentials,
and the loopback callback server of ``toolbridge connect``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.e2e.oidc import (
    CLIENT_SECRET,
    DropProxy,
    OidcServer,
    authorize,
    expire,
    oidc_server,
    run_refresh_workers,
    write_config,
)
from toolbridge import CredentialsError, Hub, Principal
from toolbridge.credentials import ConnectFlow, Material
from toolbridge.credentials._loopback import connect_on_loopback
from toolbridge.errors import AuthorizationRejected, TokenRefreshFailed

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]
LOCAL = Principal.local()


@pytest.fixture
def oidc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcServer]:
    with oidc_server(tmp_path) as server:
        monkeypatch.setenv("TB_TEST_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("TB_TEST_USERINFO", f"{server.issuer}/me")
        yield server


def make_key(folder: Path) -> None:
    from toolbridge.credentials import KeyFile

    KeyFile(folder / "master.key").create()


async def connect(hub: Hub, server: OidcServer, account: str = "alice") -> str:
    assert hub.credentials is not None
    flow = ConnectFlow(hub.credentials)
    started = await flow.start("api", account)
    callback = await authorize(started.url, server.redirect_uri, login=account)
    return (await flow.complete(callback)).id


async def test_connect_then_call_then_proactive_refresh(oidc: OidcServer, tmp_path: Path) -> None:
    make_key(tmp_path)
    config = write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}")
    hub = Hub.from_file(config)
    async with hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        started = await flow.start("api", "alice")
        query = parse_qs(urlsplit(started.url).query)
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
        assert query["redirect_uri"] == [oidc.redirect_uri] and "resource" not in query
        callback = await authorize(started.url, oidc.redirect_uri)
        assert "iss" in parse_qs(urlsplit(callback).query)
        connection = await flow.complete(callback)
        assert connection.state == "active"

        assert (await hub.call(LOCAL, "api.whoami")).value["sub"] == "alice"
        assert oidc.token_requests("refresh_token") == []

        await expire(hub, connection.id)
        assert (await hub.call(LOCAL, "api.whoami")).value["sub"] == "alice"
        refreshes = oidc.token_requests("refresh_token")
        assert [r["status"] for r in refreshes] == [200]
        _, material = await hub.credentials.store.load(connection.id)
        assert material.tokens is not None
        token = material.tokens.access_token.reveal()
        assert token not in started.url and token not in callback, "tokens never travel in URLs"


async def test_resource_indicator_binds_the_token_to_the_upstream(oidc: OidcServer, tmp_path: Path) -> None:
    """RFC 8707: ``resource`` goes into the authorization and token requests; the token's audience is it."""
    make_key(tmp_path)
    config = write_config(
        tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}", resource="https://api.test/"
    )
    hub = Hub.from_file(config)
    async with hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        started = await flow.start("api", "alice")
        assert parse_qs(urlsplit(started.url).query)["resource"] == ["https://api.test/"]
        connection = await flow.complete(await authorize(started.url, oidc.redirect_uri))
        _, material = await hub.credentials.store.load(connection.id)
        assert material.tokens is not None
        async with httpx2.AsyncClient(trust_env=False) as client:
            info = (
                await client.post(
                    f"{oidc.issuer}/token/introspection",
                    data={
                        "token": material.tokens.access_token.reveal(),
                        "client_id": "toolbridge",
                        "client_secret": CLIENT_SECRET,
                    },
                )
            ).json()
        assert info["active"] is True and info["aud"] == "https://api.test/"


async def test_o1_two_processes_refresh_once(oidc: OidcServer, tmp_path: Path, database_url: str) -> None:
    make_key(tmp_path)
    config = write_config(tmp_path, oidc, database_url)
    hub = Hub.from_file(config)
    async with hub:
        ident = await connect(hub, oidc)
        await expire(hub, ident)
    results = await anyio.to_thread.run_sync(run_refresh_workers, config, 2, 25)
    assert sum(r["ok"] for r in results) == 50, results
    assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200], "exactly one refresh"
    assert sum(r["refreshes"] for r in results) == 1
    assert oidc.revocations() == 0, "the refresh-token family is not revoked"
    hub = Hub.from_file(config)
    async with hub:  # the family still works: one more refresh succeeds
        await expire(hub, ident)
        assert (await hub.call(LOCAL, "api.whoami")).value["sub"] == "alice"
    assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200, 200]


async def test_o2_lost_refresh_response_needs_a_reconnect(
    oidc: OidcServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_key(tmp_path)
    proxy = DropProxy(oidc.port)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        config = write_config(
            tmp_path,
            oidc,
            f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}",
            token_url=f"http://127.0.0.1:{proxy.port}/token",
        )
        hub = Hub.from_file(config)
        async with hub:
            assert hub.credentials is not None
            ident = await connect(hub, oidc)
            await expire(hub, ident)
            proxy.drop = True
            with pytest.raises(TokenRefreshFailed, match="after the request was sent"):
                await hub.call(LOCAL, "api.whoami")
            assert (await hub.credentials.store.get(ident)).state == "active", (
                "a lost response is not fatal yet"
            )
            proxy.drop = False
            manager, real = hub.credentials, hub.credentials.clock
            manager.clock = lambda: real() + 3  # past the pause in which a failed refresh is not tried again
            with (
                caplog.at_level(logging.WARNING, logger="toolbridge.credentials"),
                pytest.raises(CredentialsError) as info,
            ):
                await hub.call(LOCAL, "api.whoami")
            assert info.value.code == "reconnect_required" and "toolbridge connect api" in (
                info.value.hint or ""
            )
            assert "needs a person to reconnect" in caplog.text
            assert (await hub.credentials.store.get(ident)).state == "reauth_required"
            sent = len(oidc.token_requests("refresh_token"))
            for _ in range(3):
                with pytest.raises(CredentialsError):
                    await hub.call(LOCAL, "api.whoami")
            assert len(oidc.token_requests("refresh_token")) == sent == 2, "no retry loop with the old token"
            await hub.audit.flush()
            rows = [r.entry for r in await hub.audit.tail(50, tool="(credentials.refresh)")]
            assert {r.error_code for r in rows} >= {"token_refresh_failed", "reconnect_required"}
        tg.cancel_scope.cancel()


async def test_o4_state_is_single_use_known_and_fresh(oidc: OidcServer, tmp_path: Path) -> None:
    make_key(tmp_path)
    hub = Hub.from_file(write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"))
    async with hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        started = await flow.start("api", "alice")
        callback = await authorize(started.url, oidc.redirect_uri)
        await flow.complete(callback)
        with pytest.raises(AuthorizationRejected, match="already used"):
            await flow.complete(callback)  # replayed
        wrong = callback.replace("state=", "state=x")
        with pytest.raises(AuthorizationRejected, match="unknown"):
            await flow.complete(wrong)
        without = "&".join(p for p in callback.split("&") if not p.startswith("state="))
        with pytest.raises(AuthorizationRejected, match="no state"):
            await flow.complete(without.replace("?state=", "?"))
        late = await flow.start("api", "alice")
        late_callback = await authorize(late.url, oidc.redirect_uri)
        real_clock = hub.credentials.clock
        hub.credentials.clock = lambda: real_clock() + 601
        with pytest.raises(AuthorizationRejected, match="expired"):
            await flow.complete(late_callback)
        hub.credentials.clock = real_clock
        with pytest.raises(AuthorizationRejected, match="already used"):
            await flow.complete(late_callback)  # the expired attempt burnt it


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda u: u.replace("/callback?", "/callback/?"), id="trailing-slash"),
        pytest.param(lambda u: u.replace("/callback?", "/Callback?"), id="case"),
        pytest.param(lambda u: u + "&next=evil", id="extra-query"),
        pytest.param(lambda u: u.replace("iss=http", "iss=https"), id="wrong-iss"),
    ],
)
async def test_o6_callback_must_match_exactly(oidc: OidcServer, tmp_path: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    make_key(tmp_path)
    hub = Hub.from_file(write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"))
    async with hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        started = await flow.start("api", "alice")
        callback = await authorize(started.url, oidc.redirect_uri)
        with pytest.raises(AuthorizationRejected, match="redirect URI|iss"):
            await flow.complete(mutate(callback))
        assert await hub.credentials.store.find("api") == []
        assert oidc.token_requests("authorization_code") == [], "no code exchanged for a rejected callback"


async def test_provider_refuses_a_redirect_uri_differing_by_a_slash(oidc: OidcServer, tmp_path: Path) -> None:
    make_key(tmp_path)
    hub = Hub.from_file(write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"))
    async with hub:
        assert hub.credentials is not None
        started = await ConnectFlow(hub.credentials).start(
            "api", "alice", redirect_uri=oidc.redirect_uri + "/"
        )
        async with httpx2.AsyncClient(trust_env=False) as browser:
            response = await browser.get(started.url)
        assert response.status_code == 400 and "redirect_uri" in response.text
        assert "location" not in response.headers


async def test_client_credentials_against_the_real_server(oidc: OidcServer, tmp_path: Path) -> None:
    from toolbridge.credentials import AuthConfig, Secret

    make_key(tmp_path)
    hub = Hub.from_file(write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"))
    async with hub:
        manager = hub.credentials
        assert manager is not None
        base = manager.bindings["api"]
        manager.bindings["svc"] = AuthConfig(
            scheme="client_credentials",
            provider=base.provider,
            client_id="toolbridge",
            client_secret=Secret(CLIENT_SECRET),
            scopes=("api:read",),
        )
        await manager.add("svc", "robot", Material())
        resolved = await manager.resolve("svc", LOCAL, None)
        request = httpx2.Request("GET", "http://127.0.0.1/")
        flow = resolved.auth.auth_flow(request)
        token = next(flow).headers["authorization"].removeprefix("Bearer ")
        async with httpx2.AsyncClient(trust_env=False) as client:
            info = (
                await client.post(
                    f"{oidc.issuer}/token/introspection",
                    data={"token": token, "client_id": "toolbridge", "client_secret": CLIENT_SECRET},
                )
            ).json()
        assert info["active"] is True and info["client_id"] == "toolbridge"
        assert [r["status"] for r in oidc.token_requests("client_credentials")] == [200]


async def test_loopback_callback_server_completes_the_cli_flow(oidc: OidcServer, tmp_path: Path) -> None:
    make_key(tmp_path)
    hub = Hub.from_file(write_config(tmp_path, oidc, f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"))
    async with hub:
        assert hub.credentials is not None
        flow = ConnectFlow(hub.credentials)
        shown: list[str] = []
        pages: list[httpx2.Response] = []

        async def browser(url: str) -> None:
            callback = await authorize(url, oidc.redirect_uri, login="bob")
            async with httpx2.AsyncClient(trust_env=False) as client:
                pages.append(await client.get(oidc.redirect_uri.replace("/callback", "/favicon.ico")))
                pages.append(await client.get(callback))

        async with anyio.create_task_group() as tg:

            def show(authorization) -> None:  # type: ignore[no-untyped-def]
                shown.append(authorization.url)
                tg.start_soon(browser, authorization.url)

            with anyio.fail_after(patience(30)):
                connection = await connect_on_loopback(flow, "api", "bob", show=show)
        assert connection.account == "bob"
        assert [p.status_code for p in pages] == [404, 200]
        assert "Connected api as bob" in pages[1].text
        assert (await hub.call(LOCAL, "api.whoami", connection="bob")).value["sub"] == "bob"
