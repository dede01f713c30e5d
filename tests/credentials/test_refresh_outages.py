"""Refreshes while the authorization server misbehaves: down, busy, or refusing with an OAuth error.

What counts (outside OAuth probe, several replicas under load): every call gets a typed error saying what
to do, the connection is kept unless the grant is dead, and the server is not asked again by every call.
"""

from __future__ import annotations

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.credentials.fakes import LOCAL, FakeAuthServer, HeldTokenEndpoint, make_hub, oauth_config
from toolbridge.credentials import AuthConfig, Keyring, MasterKey, Material, ProviderDef, TokenSet
from toolbridge.errors import ConfigurationError, TokenRefreshFailed
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.test"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Outage:
    """An issuer-only provider (endpoints from its metadata) whose server is down, then back."""

    def __init__(self, server: FakeAuthServer, down: str | None) -> None:
        self.server = server
        self.down = down
        self.metadata_requests = 0

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        if not request.url.path.startswith("/.well-known/"):
            return self.server.handler(request)
        self.metadata_requests += 1
        if self.down == "refused":
            raise httpx2.ConnectError("connection refused", request=request)
        if self.down == "503":
            return httpx2.Response(503, text="<html>Service Temporarily Unavailable</html>")
        endpoints = {"authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token"}
        return httpx2.Response(200, json={"issuer": ISSUER, **endpoints})


def discovered() -> AuthConfig:
    corp = ProviderDef(name="corp", display_name="Corp SSO", scope_separator=" ", issuer=ISSUER)
    return AuthConfig(scheme="oauth2", provider=corp, client_id="cid")


async def connect(manager, server: FakeAuthServer, *, now: float):  # type: ignore[no-untyped-def]
    tokens = TokenSet.from_response(server.issue(), now=now)
    return await manager.add("gh", "default", Material(tokens=tokens))


@pytest.mark.parametrize("down", ["503", "refused"])
async def test_a_server_down_when_a_process_first_reads_its_metadata_is_a_transient_refresh_failure(
    sqlite_url: str, down: str
) -> None:
    """A replica that had not read the provider's metadata yet answered every call during an outage with
    configuration_error "publishes no authorization server metadata" (a 503) or upstream_unavailable
    (refused), and read the metadata again for each call: 198 requests in 4 s from two replicas."""
    server, clock = FakeAuthServer(expires_in=10), Clock()
    outage = Outage(server, down)
    config = {"gh": discovered()}
    hub, manager, client = make_hub(Database(sqlite_url), server, config, clock=clock, handler=outage.handler)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        clock.now += 11  # expired: the next call must refresh, and must first find the token endpoint
        for _ in range(5):
            with pytest.raises(TokenRefreshFailed) as failed:
                await hub.call(LOCAL, "gh.me")
            assert failed.value.retry_after is not None and 0 < failed.value.retry_after <= 2
        assert failed.value.message.startswith("cannot refresh the token: ")
        assert "metadata" in failed.value.message
        assert outage.metadata_requests == 1, "the calls in the pause got the failure, not a request each"
        assert (await manager.store.find("gh"))[0].state == "active"

        outage.down = None
        clock.now += 2
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 1


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [(400, "temporarily_unavailable", TokenRefreshFailed), (401, "invalid_client", ConfigurationError)],
)
async def test_a_token_endpoint_refusing_with_another_oauth_error_is_asked_once_per_pause(
    sqlite_url: str, status: int, error: str, raised: type[Exception]
) -> None:
    """``400 {"error": "temporarily_unavailable"}`` and ``401 {"error": "invalid_client"}`` (a client secret
    changed at the provider) were a reconnect_required (a person must reconnect — which cannot help) whose
    hint said to check the client, and left the connection usable: every call sent another token request
    (81 failed calls, 81 requests). The first is transient; the second the operator's to fix."""
    server, clock = FakeAuthServer(expires_in=10), Clock()
    refusing = {"on": True}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token" and refusing["on"]:
            server.token_requests.append({"grant_type": "refresh_token"})
            return httpx2.Response(status, json={"error": error})
        return server.handler(request)

    config = {"gh": oauth_config()}
    hub, manager, client = make_hub(Database(sqlite_url), server, config, clock=clock, handler=handler)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        clock.now += 11
        for _ in range(5):
            with pytest.raises(raised) as refused:
                await hub.call(LOCAL, "gh.me")
        assert error in str(refused.value)
        if raised is ConfigurationError:
            assert "client_secret" in str(refused.value)
        assert server.refreshes == 1
        assert (await manager.store.find("gh"))[0].state == "active", "the grant itself may be fine"
        refusing["on"] = False
        clock.now += 2
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}


async def test_a_slow_token_endpoint_holds_no_call_whose_token_is_still_good(sqlite_url: str) -> None:
    """While one call's proactive refresh waited for a token endpoint that hung, every other call of the
    connection waited too — in that process for the lock, in the others for the lease — up to the 20-second
    token timeout, though their token was good for a minute more."""
    server, clock, keys = FakeAuthServer(expires_in=600), Clock(), Keyring(MasterKey.generate())
    held = HeldTokenEndpoint(server)

    config = {"gh": oauth_config()}
    hub_a, manager_a, client_a = make_hub(
        Database(sqlite_url), server, config, clock=clock, keys=keys, handler=held.handler
    )
    hub_b, _, client_b = make_hub(
        Database(sqlite_url), server, config, clock=clock, keys=keys, handler=held.handler
    )
    async with hub_a, client_a, hub_b, client_b, anyio.create_task_group() as tg:
        await connect(manager_a, server, now=clock.now)
        await hub_b.call(LOCAL, "gh.me")
        clock.now += 545  # due: within the 60-second skew, good for 55 s more
        refreshed = anyio.Event()

        async def refresher() -> None:
            await hub_a.call(LOCAL, "gh.me")
            refreshed.set()

        tg.start_soon(refresher)
        with anyio.fail_after(patience(5)):
            await held.entered.wait()
        with anyio.fail_after(patience(5)):  # the token endpoint has not answered
            for hub in (hub_a, hub_b, hub_a, hub_b):
                assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert not refreshed.is_set() and len(server.token_requests) == 0
        held.release.set()
        with anyio.fail_after(patience(5)):
            await refreshed.wait()
        clock.now += 6  # past process B's cache: it takes up the new token, asking nothing
        assert (await hub_b.call(LOCAL, "gh.me")).value == {"user": "alice"}
    assert server.refreshes == 1
