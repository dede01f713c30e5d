"""A token endpoint that hangs or is slow, against the real OAuth server (oidc-provider) on 127.0.0.1.

No call waits for a refresh past its own deadline, whether it sent the token request or waits for the one
under way; the refresh goes on to ``credentials.refresh_timeout``, and the token a slow endpoint brings
after the callers gave up is kept (the provider rotated the refresh token: sending the old one again would
trip its reuse detection and revoke the grant).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.e2e.oidc import CLIENT_SECRET, DropProxy, OidcServer, authorize, expire, oidc_server, write_config
from toolbridge import Hub, Principal
from toolbridge.credentials import ConnectFlow, KeyFile
from toolbridge.errors import TokenRefreshFailed

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]
LOCAL = Principal.local()
CALL_TIMEOUT = patience(3)
REFRESH_TIMEOUT = patience(6)


@pytest.fixture
def oidc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OidcServer]:
    with oidc_server(tmp_path) as server:
        monkeypatch.setenv("TB_TEST_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("TB_TEST_USERINFO", f"{server.issuer}/me")
        yield server


def hub_through(proxy: DropProxy, oidc: OidcServer, folder: Path) -> Hub:
    """A hub whose token endpoint is reached through ``proxy``; calls of CALL_TIMEOUT, refreshes of
    REFRESH_TIMEOUT."""
    KeyFile(folder / "master.key").create()
    settings = {
        "limits": {"call_timeout": CALL_TIMEOUT},
        "credentials": {"refresh_timeout": REFRESH_TIMEOUT},
    }
    token_url = f"http://127.0.0.1:{proxy.port}/token"
    database = f"sqlite+aiosqlite:///{folder / 'tb.db'}"
    return Hub.from_file(write_config(folder, oidc, database, token_url=token_url, settings=settings))


async def connect(hub: Hub, server: OidcServer) -> str:
    assert hub.credentials is not None
    flow = ConnectFlow(hub.credentials)
    started = await flow.start("api", "alice")
    return (await flow.complete(await authorize(started.url, server.redirect_uri))).id


def frozen_clock(hub: Hub) -> list[float]:
    """Stop the manager's clock (token expiry, the pause after a failed refresh): the test moves it."""
    assert hub.credentials is not None
    now = [hub.credentials.clock()]
    hub.credentials.clock = lambda: now[0]
    return now


async def test_a_hung_token_endpoint_holds_no_call_past_its_deadline(
    oidc: OidcServer, tmp_path: Path
) -> None:
    """The call that sent the refresh, and the calls waiting for it, waited for a token endpoint that took
    the connection and never answered until the 20-second token timeout, whatever their own deadline, and
    the error named no endpoint (outside OAuth probe). Each now gives up at its deadline naming the
    endpoint, with one token request for all; the refresh gives up at refresh_timeout, and the next call
    after the pause sends a new one."""
    proxy = DropProxy(oidc.port)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        hub = hub_through(proxy, oidc, tmp_path)
        async with hub:
            ident = await connect(hub, oidc)
            await expire(hub, ident)
            now = frozen_clock(hub)
            proxy.hang = True
            failures: list[TokenRefreshFailed] = []

            async def call() -> None:
                with pytest.raises(TokenRefreshFailed) as failed:
                    await hub.call(LOCAL, "api.whoami")
                failures.append(failed.value)

            with anyio.fail_after(patience(15)):  # ends the test if the calls hang
                async with anyio.create_task_group() as calls:
                    for _ in range(3):
                        calls.start_soon(call)
            assert proxy.hung == 1, "one token request for the three calls"
            for failure in failures:
                assert failure.message.startswith("the token endpoint 127.0.0.1 has not answered"), failure
                assert "call's deadline" in failure.message and CLIENT_SECRET not in str(failure)
            with anyio.fail_after(patience(30)):
                await proxy.abandoned.wait()  # the refresh gave up at refresh_timeout
            proxy.hang = False
            with pytest.raises(TokenRefreshFailed) as failed:  # within the pause: answered from memory
                await hub.call(LOCAL, "api.whoami")
            gave_up = f"the token endpoint 127.0.0.1 did not answer within {REFRESH_TIMEOUT:g} s"
            assert failed.value.message == gave_up
            assert failed.value.retry_after is not None and failed.value.retry_after > 0
            now[0] += 3  # past the pause: the next call refreshes again
            assert (await hub.call(LOCAL, "api.whoami")).value["sub"] == "alice"
        tg.cancel_scope.cancel()
    assert proxy.hung == 1
    assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200]


async def test_a_refresh_answered_after_the_call_gave_up_is_kept(oidc: OidcServer, tmp_path: Path) -> None:
    """A slow token endpoint answers after the call's deadline: the call has given up, the refresh has
    not, so the rotated refresh token is stored and the next call uses its access token: one refresh, no
    reuse of the old refresh token (which would revoke the grant)."""
    proxy = DropProxy(oidc.port)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        hub = hub_through(proxy, oidc, tmp_path)
        async with hub:
            ident = await connect(hub, oidc)
            await expire(hub, ident)
            proxy.held = anyio.Event()
            with anyio.fail_after(patience(15)), pytest.raises(TokenRefreshFailed, match="has not answered"):
                await hub.call(LOCAL, "api.whoami")
            proxy.held.set()
            assert (await hub.call(LOCAL, "api.whoami")).value["sub"] == "alice"
            assert hub.credentials is not None
            assert (await hub.credentials.store.get(ident)).state == "active"
        tg.cancel_scope.cancel()
    assert [r["status"] for r in oidc.token_requests("refresh_token")] == [200], "one refresh, kept"
    assert oidc.revocations() == 0


async def test_a_refresh_after_a_401_holds_the_call_no_longer_than_its_deadline(
    oidc: OidcServer, tmp_path: Path
) -> None:
    """The upstream refuses a token that has not expired (revoked at the provider): the refresh that the
    401 starts meets a hung token endpoint, and the call ends at its deadline, naming the endpoint."""
    proxy = DropProxy(oidc.port)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        hub = hub_through(proxy, oidc, tmp_path)
        async with hub:
            ident = await connect(hub, oidc)
            assert hub.credentials is not None
            _, material = await hub.credentials.store.load(ident)
            assert material.tokens is not None
            async with httpx2.AsyncClient(trust_env=False) as client:
                form = {"token": material.tokens.access_token.reveal(), "client_id": "toolbridge"}
                revoked = await client.post(
                    f"{oidc.issuer}/token/revocation", data={**form, "client_secret": CLIENT_SECRET}
                )
            assert revoked.status_code == 200
            proxy.hang = True
            with anyio.fail_after(patience(15)), pytest.raises(TokenRefreshFailed) as failed:
                await hub.call(LOCAL, "api.whoami")
            assert failed.value.message.startswith("the token endpoint 127.0.0.1 has not answered")
            assert proxy.hung == 1
        tg.cancel_scope.cancel()
