"""The credential manager in the call path: schemes on requests, proactive and 401 refresh, failures."""

from __future__ import annotations

import anyio
import httpx2
import pytest
import sqlalchemy as sa

from tests.credentials.fakes import LOCAL, FakeAuthServer, HeldTokenEndpoint, make_hub, oauth_config, provider
from toolbridge import CredentialsError
from toolbridge.credentials import AuthConfig, Keyring, MasterKey, Material, Secret, TokenSet
from toolbridge.credentials._tables import connections
from toolbridge.errors import BadRequest, NotConnected, TokenRefreshFailed
from toolbridge.policy import Principal
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def connect(
    manager, server: FakeAuthServer, account: str = "default", connector: str = "gh", *, now: float
):  # type: ignore[no-untyped-def]
    doc = server.issue()
    tokens = TokenSet.from_response(doc, now=now)
    return await manager.add(connector, account, Material(tokens=tokens))


async def test_oauth_call_carries_the_token_and_audits_its_use(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        result = await hub.call(LOCAL, "gh.me")
        assert result.value == {"user": "alice"}
        assert server.api_calls[-1] in server.access
        await hub.audit.flush()
        tools = [r.entry.tool for r in await hub.audit.tail(10)]
    assert "(credentials.use)" in tools and "(credentials.add)" in tools and "gh.me" in tools


async def test_proactive_refresh_before_expiry(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(expires_in=600), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config(refresh_skew=60)}, clock=clock)
    async with hub, client:
        conn = await connect(manager, server, now=clock.now)
        await hub.call(LOCAL, "gh.me")
        assert server.refreshes == 0
        clock.now += 545  # inside the 60 s skew
        await hub.call(LOCAL, "gh.me")
        assert server.refreshes == 1
        stored = await manager.store.get(conn.id)
        assert stored.token_version == conn.token_version + 1 and stored.state == "active"


async def test_401_refreshes_once_then_retries(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(rotate=False), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        server.revoke_access()  # the provider dropped the access token early
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 1
        assert len(server.api_calls) == 2


async def test_401_after_a_fresh_token_is_a_reconnect_error(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        server.revoked_family = True  # every token refused from now on; refresh → invalid_grant
        with pytest.raises(CredentialsError, match="reauth required") as info:
            await hub.call(LOCAL, "gh.me")
        assert "toolbridge connect gh --account default" in (info.value.hint or "")
        assert server.refreshes == 1
        with pytest.raises(CredentialsError):
            await hub.call(LOCAL, "gh.me")
        assert server.refreshes == 1, "a dead grant is never retried"
        listed = await manager.store.find("gh")
        assert listed[0].state == "reauth_required"


async def test_a_dead_per_user_grant_says_whose_it_is_and_how_its_agent_reconnects(sqlite_url: str) -> None:
    """The hint gave 'toolbridge connect gh --account default', which the CLI refuses for a per-user
    connector (it needs --for), and no way for the agent itself (found by an outside OAuth probe)."""
    server, clock = FakeAuthServer(), Clock()
    config = {"gh": oauth_config(policy="per_user")}
    hub, manager, client = make_hub(Database(sqlite_url), server, config, clock=clock)
    alice = Principal.agent("alice", ["*"])
    async with hub, client:
        doc = server.issue()
        await manager.add(
            "gh", "default", Material(tokens=TokenSet.from_response(doc, now=clock.now)), owner=alice.id
        )
        server.revoked_family = True
        with pytest.raises(CredentialsError, match="reauth required") as info:
            await hub.call(alice, "gh.me")
    assert info.value.hint == (
        "a person must reconnect it: toolbridge connect gh --for agent:alice --account default "
        '(or agent:alice itself: POST /v1/connections/connect {"connector": "gh", "account": "default"})'
    )


async def test_transient_token_endpoint_failure_keeps_the_connection(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(expires_in=10), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        clock.now += 11  # expired (while it is still good, a failed refresh lets the call use it: below)
        server.fail_with = 503
        with pytest.raises(TokenRefreshFailed):
            await hub.call(LOCAL, "gh.me")
        conn = (await manager.store.find("gh"))[0]
        assert conn.state == "active" and conn.last_error and "503" in conn.last_error
        server.fail_with = None
        asked = len(server.token_requests)
        for _ in range(3):  # for a moment the failure is the answer: no token request per waiting call
            with pytest.raises(TokenRefreshFailed) as paused:
                await hub.call(LOCAL, "gh.me")
            assert paused.value.retry_after is not None and 0 < paused.value.retry_after <= 2
        assert len(server.token_requests) == asked
        clock.now += 2
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}


async def test_a_failed_proactive_refresh_lets_calls_use_the_token_until_it_expires(sqlite_url: str) -> None:
    """A token endpoint failing for a moment made every call fail with token_refresh_failed, though their
    access token was good for up to refresh_skew more seconds (an outside probe: 929 failed calls in a
    4-second 5xx window, half of them with a valid token)."""
    server, clock = FakeAuthServer(expires_in=600), Clock()
    hub, manager, client = make_hub(Database(sqlite_url), server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        clock.now += 545  # inside the 60-second skew: due for a refresh, good for 55 s more
        server.fail_with = 503
        for _ in range(3):
            assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 1, "asked once; the calls in the pause use the current token"
        clock.now += 2  # the pause is over: the next call asks again, and still gets through
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 2
        clock.now += 54  # the token expired: now the failure is the answer
        with pytest.raises(TokenRefreshFailed):
            await hub.call(LOCAL, "gh.me")
        server.fail_with = None
        clock.now += 2
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert (await manager.store.find("gh"))[0].token_version == 2


async def test_a_failed_refresh_falls_back_on_the_newest_token_another_process_stored(
    sqlite_url: str,
) -> None:
    """A replica whose cached token was the previous one (another replica had refreshed since) fell back on
    that expired token when its own refresh failed, and failed the call though the stored one was good."""
    server, clock, keys = FakeAuthServer(expires_in=8), Clock(), Keyring(MasterKey.generate())
    config = {"gh": oauth_config()}
    hub_a, manager_a, client_a = make_hub(Database(sqlite_url), server, config, clock=clock, keys=keys)
    hub_b, _, client_b = make_hub(Database(sqlite_url), server, config, clock=clock, keys=keys)
    async with hub_a, client_a, hub_b, client_b:
        await connect(manager_a, server, now=clock.now)  # expires at 8 s, due at 4 s
        clock.now += 3.9
        await hub_b.call(LOCAL, "gh.me")  # B caches it (for its 5-second cache_ttl)
        clock.now += 0.1
        await hub_a.call(LOCAL, "gh.me")  # A refreshes: the new token is due at 8 s, expires at 12 s
        assert server.refreshes == 1
        server.fail_with = 503
        clock.now += 4.5  # B's cached token expired; the stored one is due, and good for 3.5 s more
        assert (await hub_b.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 2


async def test_a_token_shorter_lived_than_the_skew_is_refreshed_at_half_its_life(sqlite_url: str) -> None:
    """A 30-second token under the 60-second default skew was never fresh: every call refreshed (an
    outside probe saw 46 tokens in a short run against a provider giving 8-second ones)."""
    server, clock = FakeAuthServer(expires_in=30), Clock()
    hub, manager, client = make_hub(Database(sqlite_url), server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        for _ in range(5):
            assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 0
        clock.now += 16  # past half its life
        for _ in range(5):
            assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}
        assert server.refreshes == 1


async def test_stale_writer_cannot_overwrite_a_newer_token(database_url: str) -> None:
    """O3: compare-and-set on token_version rejects the slow refresher's write."""
    server, clock = FakeAuthServer(), Clock()
    db = Database(database_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        conn = await connect(manager, server, now=clock.now)
        fast = Material(tokens=TokenSet(Secret("fast-token"), Secret("rt-fast"), clock.now + 3600))
        slow = Material(tokens=TokenSet(Secret("slow-token"), Secret("rt-slow"), clock.now + 3600))
        assert await manager.store.commit(conn.id, conn.token_version, fast, expires_at=None) == 2
        assert await manager.store.commit(conn.id, conn.token_version, slow, expires_at=None) is None
        _, material = await manager.store.load(conn.id)
        assert material.tokens is not None and material.tokens.access_token.reveal() == "fast-token"


async def test_lease_lets_one_refresher_through(database_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    db = Database(database_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        conn = await connect(manager, server, now=clock.now)
        store = manager.store
        assert await store.acquire_lease(conn.id, 1, "a", now=clock.now, ttl=30)
        assert not await store.acquire_lease(conn.id, 1, "b", now=clock.now, ttl=30)
        assert await store.acquire_lease(conn.id, 1, "b", now=clock.now + 31, ttl=30), (
            "an expired lease is taken over"
        )


async def test_connection_selection(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        with pytest.raises(NotConnected, match="not connected") as info:
            await hub.call(LOCAL, "gh.me")
        assert "toolbridge connect gh" in (info.value.hint or "")
        await connect(manager, server, "alice", now=clock.now)
        await connect(manager, server, "bob", now=clock.now)
        with pytest.raises(BadRequest, match="2 connections") as bad:
            await hub.call(LOCAL, "gh.me")
        assert "'alice'" in (bad.value.hint or "")
        assert (await hub.call(LOCAL, "gh.me", connection="bob")).value == {"user": "alice"}
        with pytest.raises(NotConnected, match="as 'carol'"):
            await hub.call(LOCAL, "gh.me", connection="carol")


@pytest.mark.parametrize("scheme", ["api_key", "bearer", "basic"])
async def test_a_connector_without_a_sign_in_says_to_add_its_secret(sqlite_url: str, scheme: str) -> None:
    """The hint sent the operator to 'toolbridge connect', which refuses every scheme but oauth2."""
    config = AuthConfig(scheme=scheme, name="X-Key") if scheme == "api_key" else AuthConfig(scheme=scheme)
    hub, _, client = make_hub(Database(sqlite_url), FakeAuthServer(), {"svc": config}, clock=Clock())
    async with hub, client:
        with pytest.raises(NotConnected) as info:
            await hub.call(LOCAL, "svc.me", connection="ops")
    assert info.value.hint == (
        "an operator adds its secret: toolbridge connections add svc --account ops --secret env:VARIABLE "
        "(or POST /v1/connections)"
    )


@pytest.mark.parametrize(
    ("config", "secret", "check"),
    [
        (AuthConfig(scheme="api_key", name="X-Key"), "k-1", lambda r: r.headers["x-key"] == "k-1"),
        (
            AuthConfig(scheme="api_key", name="key", location="query"),
            "k-2",
            lambda r: r.url.params["key"] == "k-2",
        ),
        (
            AuthConfig(scheme="api_key", name="sid", location="cookie"),
            "k-3",
            lambda r: r.headers["cookie"] == "sid=k-3",
        ),
        (AuthConfig(scheme="bearer"), "t-1", lambda r: r.headers["authorization"] == "Bearer t-1"),
        (AuthConfig(scheme="basic", username="u"), "p", lambda r: r.headers["authorization"] == "Basic dTpw"),
        (AuthConfig(scheme="basic"), "u:p", lambda r: r.headers["authorization"] == "Basic dTpw"),
        (
            AuthConfig(scheme="header", templates={"Authorization": "Token token={token}", "X-Org": "{org}"}),
            '{"token": "t-9", "org": "acme"}',
            lambda r: r.headers["authorization"] == "Token token=t-9" and r.headers["x-org"] == "acme",
        ),
    ],
)
async def test_static_schemes(sqlite_url: str, config: AuthConfig, secret: str, check) -> None:  # type: ignore[no-untyped-def]
    seen: list[httpx2.Request] = []
    server, clock = FakeAuthServer(), Clock()

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return server.handler(request)

    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"svc": config}, clock=clock, handler=record)
    async with hub, client:
        await manager.add("svc", "default", Material(secret=Secret(secret)))
        with pytest.raises(CredentialsError):  # the fake API knows no static secrets: 401, no refresh
            await hub.call(LOCAL, "svc.me")
    assert check(seen[-1])
    assert len(seen) == 1, "a static secret is not refreshed or retried on 401"


async def test_client_credentials_fetches_on_first_use(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    config = AuthConfig(
        scheme="client_credentials",
        provider=oauth_config().provider,
        client_id="svc",
        client_secret=Secret("cs"),
        scopes=("read",),
    )
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"cc": config}, clock=clock)
    async with hub, client:
        await manager.add("cc", "default", Material())
        assert (await hub.call(LOCAL, "cc.me")).value == {"user": "alice"}
        assert server.token_requests[0] == {
            "grant_type": "client_credentials",
            "scope": "read",
            "client_id": "svc",
            "client_secret": "cs",
        }
        await hub.call(LOCAL, "cc.me")
        assert len(server.token_requests) == 1, "the token is cached until it expires"


async def test_database_holds_no_token_in_plaintext(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"gh": oauth_config()}, clock=clock)
    async with hub, client:
        await connect(manager, server, now=clock.now)
        async with db.transaction() as conn:
            rows = (await conn.execute(sa.select(connections))).all()
    assert rows and not any("at-" in str(v) or "rt-" in str(v) for v in rows[0])


async def test_jwt_bearer_grant_signs_an_assertion_per_token(sqlite_url: str) -> None:
    from joserfc import jwt

    from tests.credentials.test_providers_schemes import rsa_pem
    from toolbridge.credentials import ServiceAccount

    pem, public = rsa_pem()
    account = ServiceAccount("bot@proj.test", Secret(pem), "https://auth.test/token", "kid-9")
    config = AuthConfig(
        scheme="jwt_bearer", provider=oauth_config().provider, service_account=account, scopes=("s",)
    )
    server, clock = FakeAuthServer(expires_in=100), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(db, server, {"sa": config}, clock=clock)
    async with hub, client:
        await manager.add("sa", "default", Material())
        assert (await hub.call(LOCAL, "sa.me")).value == {"user": "alice"}
        clock.now += 90  # within the skew: a new assertion, a new token
        await hub.call(LOCAL, "sa.me")
    forms = [f for f in server.token_requests if f["grant_type"].endswith("jwt-bearer")]
    assert len(forms) == 2 and forms[0]["assertion"] != forms[1]["assertion"]
    claims = jwt.decode(forms[0]["assertion"], public).claims
    assert (
        claims["iss"] == "bot@proj.test"
        and claims["aud"] == "https://auth.test/token"
        and claims["scope"] == "s"
    )
    assert "client_secret" not in forms[0]


async def test_probe_refreshes_once_on_401(sqlite_url: str) -> None:
    from toolbridge.credentials._probe import probe

    server, clock = FakeAuthServer(rotate=False), Clock()
    db = Database(sqlite_url)
    hub, manager, client = make_hub(
        db, server, {"gh": oauth_config(probe_url="https://api.test/me")}, clock=clock
    )
    async with hub, client:
        conn = await connect(manager, server, now=clock.now)
        server.revoke_access()
        result = await probe(manager, conn.id)
        assert (result.ok, result.status, server.refreshes) == (True, 200, 1)
        server.revoked_family = True
        failed = await probe(manager, conn.id)
        assert not failed.ok and "reconnect" in failed.detail


async def test_o3_slow_refresher_loses_to_the_newer_token(sqlite_url: str) -> None:
    """A refresher whose lease ran out while its token request hung: its late write is rejected (CAS)."""
    server, clock = FakeAuthServer(expires_in=600, rotate=False), Clock()
    held = HeldTokenEndpoint(server)
    ring = Keyring(MasterKey.generate())  # two processes, one master key
    hub_a, manager_a, client_a = make_hub(
        Database(sqlite_url), server, {"gh": oauth_config()}, clock=clock, handler=held.handler, keys=ring
    )
    hub_b, manager_b, client_b = make_hub(
        Database(sqlite_url), server, {"gh": oauth_config()}, clock=clock, keys=ring
    )
    async with hub_a, client_a, hub_b, client_b:
        conn = await connect(manager_a, server, now=clock.now)
        clock.now += 580  # expiring
        results: list[object] = []
        async with anyio.create_task_group() as tg:

            async def call_a() -> None:
                results.append((await hub_a.call(LOCAL, "gh.me")).value)

            tg.start_soon(call_a)
            await held.entered.wait()  # A holds the lease and waits on the token endpoint
            clock.now += manager_a.lease_ttl + 1  # A's lease runs out
            assert (await hub_b.call(LOCAL, "gh.me")).value == {"user": "alice"}
            _, b_material = await manager_b.store.load(conn.id)
            held.release.set()
        assert results == [{"user": "alice"}]
        stored, material = await manager_a.store.load(conn.id)
        assert stored.token_version == conn.token_version + 1, "only one write landed"
        assert material.tokens is not None and b_material.tokens is not None
        assert material.tokens.access_token == b_material.tokens.access_token, "B's token survived"
        await hub_a.audit.flush()
        outcomes = [r.entry.outcome for r in await hub_a.audit.tail(20, tool="(credentials.refresh)")]
        assert "stale" in outcomes


async def test_a_service_account_without_a_connection_is_added_without_a_secret(sqlite_url: str) -> None:
    server, clock = FakeAuthServer(), Clock()
    config = AuthConfig(
        scheme="client_credentials", provider=provider(), client_id="c", client_secret=Secret("s")
    )
    hub, _, client = make_hub(Database(sqlite_url), server, {"svc": config}, clock=clock)
    async with hub, client:
        with pytest.raises(NotConnected) as info:
            await hub.call(LOCAL, "svc.me")
    assert (info.value.hint or "").startswith(
        "an operator adds it: toolbridge connections add svc (the configured"
    )
