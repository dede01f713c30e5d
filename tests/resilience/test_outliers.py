"""RELIABILITY.md R12: one connection (credential) of a connector that keeps answering 5xx is ejected for
30 s × its ejection count, the others keep being served, and never more than the configured share of the
connections is ejected at once."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.resilience.conftest import FakeTime
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
from toolbridge.errors import CircuitOpen, UpstreamStatusError
from toolbridge.resilience import (
    BreakerPolicy,
    OutlierDetector,
    OutlierPolicy,
    Resilience,
    ResiliencePolicy,
    RetryPolicy,
)
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio


@dataclass
class Clock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


def detector(clock: Clock, **policy: float) -> OutlierDetector:
    return OutlierDetector("gh", OutlierPolicy(**policy), clock=clock)  # type: ignore[arg-type]


def fail(d: OutlierDetector, connection: str, times: int) -> list[bool]:
    out = []
    for _ in range(times):
        d.admit(connection)
        out.append(d.record(connection, True))
    return out


def test_five_consecutive_failures_eject_for_thirty_seconds() -> None:
    clock = Clock()
    d = detector(clock)
    assert fail(d, "conn_a", 5) == [False, False, False, False, True]
    with pytest.raises(CircuitOpen) as refused:
        d.admit("conn_a", "gh.me")
    assert refused.value.retry_after == 30.0 and refused.value.status == 503
    assert "connection 'conn_a' of connector 'gh' is ejected for 30 s more" in refused.value.message
    assert "other connections are still served" in refused.value.message
    assert refused.value.hint is not None and "try again in 30 s" in refused.value.hint
    assert "connections test conn_a" in refused.value.hint and refused.value.tool == "gh.me"
    clock.t += 29.5
    with pytest.raises(CircuitOpen):
        d.admit("conn_a")
    clock.t += 0.5
    d.admit("conn_a")  # back in service


def test_a_success_resets_the_consecutive_count() -> None:
    d = detector(Clock())
    fail(d, "conn_a", 4)
    d.record("conn_a", False)
    assert fail(d, "conn_a", 4) == [False] * 4
    assert d.ejected() == []
    assert fail(d, "conn_a", 1) == [True]


def test_the_ejection_time_is_thirty_seconds_times_the_ejection_count_up_to_the_maximum() -> None:
    clock = Clock()
    d = detector(clock, max_ejection_seconds=100.0)
    seen = []
    for _ in range(5):
        fail(d, "conn_a", 5)
        (ejection,) = d.ejected()
        seen.append((ejection.ejections, ejection.seconds_left))
        clock.t += ejection.seconds_left  # back, and failing again at once
    assert seen == [(1, 30.0), (2, 60.0), (3, 90.0), (4, 100.0), (5, 100.0)]


def test_the_ejection_count_decays_by_one_per_healthy_base_period() -> None:
    clock = Clock()
    d = detector(clock)
    for _ in range(3):  # ejected 3 times in a row: the third for 90 s
        fail(d, "conn_a", 5)
        clock.t += d.ejected()[0].seconds_left
    clock.t += 59.0  # back for 59 s: one period healthy, so the count is 2
    fail(d, "conn_a", 5)
    assert d.ejected()[0].ejections == 3 and d.ejected()[0].seconds_left == 90.0
    clock.t += 90.0 + 300.0  # ten periods healthy: back to none
    fail(d, "conn_a", 5)
    assert d.ejected()[0].ejections == 1 and d.ejected()[0].seconds_left == 30.0


@pytest.mark.parametrize(("active", "cap"), [(1, 1), (3, 1), (19, 1), (20, 2), (35, 3)])
def test_at_most_the_share_of_active_connections_is_ejected_and_always_one(active: int, cap: int) -> None:
    d = detector(Clock())
    for n in range(active):
        d.admit(f"conn_{n}")
    assert d.cap() == cap
    for n in range(active):
        fail(d, f"conn_{n}", 5)
    assert len(d.ejected()) == cap  # over the cap a failing connection is not ejected: its calls go on


def test_connections_not_seen_recently_do_not_count_toward_the_share() -> None:
    clock = Clock()
    d = detector(clock, active_seconds=600.0)
    for n in range(20):
        d.admit(f"conn_{n}")
    assert d.cap() == 2
    clock.t += 601.0
    d.admit("conn_0")  # forgets the ones gone quiet
    assert d.cap() == 1
    d.admit("conn_1")
    assert d.cap() == 1 and len(d._hosts) == 2


def test_without_a_connection_or_when_disabled_nothing_is_ejected() -> None:
    d = detector(Clock())
    assert [d.record(None, True) for _ in range(10)] == [False] * 10
    off = detector(Clock(), enabled=False)
    assert fail(off, "conn_a", 10) == [False] * 10


# -- over a hub: per-user connections against a real upstream ---------------------------------------


@dataclass
class TokenUpstream:
    """Answers each bearer token with its scripted status (200 by default), counting what it saw."""

    url: str
    statuses: dict[str, int] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def token_upstream() -> Iterator[TokenUpstream]:
    upstream = TokenUpstream("")

    async def me(request: Request) -> JSONResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        upstream.seen[token] += 1
        status = upstream.statuses.get(token, 200)
        return JSONResponse({"error": "broken account"} if status >= 400 else {"ok": True}, status)

    with uvicorn_thread(Starlette(routes=[Route("/me", me)]), loopback_socket()) as server:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        upstream.url = f"http://{host}:{port}/me"
        yield upstream


@dataclass
class World:
    hub: Hub
    upstream: TokenUpstream
    time: FakeTime
    ids: dict[str, str]

    async def call(self, who: str) -> object:
        return (await self.hub.call(Principal.agent(who, ["gh.*"]), "gh.me")).value


BREAKER = BreakerPolicy(failure_rate=0.5, window=40, minimum_calls=20)
"""Opens once half of 20 calls failed: one broken account alone would open it for everyone."""


@pytest.fixture
async def world(token_upstream: TokenUpstream) -> AsyncIterator[World]:
    token_upstream.statuses.clear()
    token_upstream.seen.clear()
    fake = FakeTime()
    resilience = Resilience(clock=fake.clock, sleep=fake.sleep, rng=random.Random(5))
    hub = Hub(resilience=resilience, agents={"ops": ["*"], "alice": ["gh.*"], "bob": ["gh.*"]})
    client = httpx2.AsyncClient(trust_env=False, timeout=patience(5.0))
    binding = {"gh": AuthConfig(scheme="bearer", policy="per_user")}
    keys = StaticKeys(Keyring(MasterKey.generate()))
    hub.credentials = CredentialManager(Vault(hub.database, keys), binding, client=client, cache_ttl=0)

    async def me(invocation: Invocation) -> object:
        assert invocation.credentials is not None
        response = await client.get(token_upstream.url, auth=invocation.credentials.auth)
        if response.is_error:  # as an SDK's client raises, translated at the connector's boundary
            raise UpstreamStatusError(
                f"GET /me: {response.status_code}", upstream_status=response.status_code
            )
        return response.json()

    hub.tool(me, connector="gh", name="me", read_only=True)
    resilience.configure("gh", ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker=BREAKER))
    async with client, hub:
        ids = {}
        for who in ("alice", "bob", "carol"):
            material = Material(secret=Secret(f"{who}-token"))
            ids[who] = (await hub.credentials.add("gh", "work", material, owner=f"agent:{who}")).id
        yield World(hub, token_upstream, fake, ids)


async def test_a_broken_account_is_ejected_and_the_others_keep_being_served(world: World) -> None:
    world.upstream.statuses["alice-token"] = 500
    refused, failed = [], []
    for _ in range(10):
        try:
            await world.call("alice")
        except (UpstreamStatusError, CircuitOpen) as exc:
            (refused if isinstance(exc, CircuitOpen) else failed).append(exc)
        assert await world.call("bob") == {"ok": True}
    assert [e.upstream_status for e in failed if isinstance(e, UpstreamStatusError)] == [500] * 5
    assert world.upstream.seen == {"alice-token": 5, "bob-token": 10}, "no request once alice's was ejected"
    assert len(refused) == 5 and f"connection {world.ids['alice']!r}" in refused[0].message
    assert world.hub.resilience.breaker_state("gh") == "closed", "an ejected connection's calls don't count"
    for _ in range(10):
        assert await world.call("bob") == {"ok": True}
    (health,) = world.hub.resilience.health(["gh"])
    (ejection,) = health.ejected
    assert ejection.connection == world.ids["alice"] and ejection.ejections == 1
    assert 0 < ejection.seconds_left <= 30.0
    assert "alice-token" not in repr(health)

    world.time.offset += 30.0  # back in service: still broken, so ejected again, for 60 s
    for _ in range(5):
        with pytest.raises(UpstreamStatusError):
            await world.call("alice")
    with pytest.raises(CircuitOpen) as again:
        await world.call("alice")
    assert world.upstream.seen["alice-token"] == 10
    assert 50.0 < again.value.retry_after <= 60.0


async def test_only_the_configured_share_is_ejected_at_once(world: World) -> None:
    """Three active connections: 10 % of them rounds to none, so one (and only one) may be ejected;
    the second broken account's calls go on reaching the upstream, and fail there."""
    world.upstream.statuses.update({"alice-token": 500, "carol-token": 503})
    assert await world.call("bob") == {"ok": True}
    for who in ("alice", "carol"):
        for _ in range(5):
            with pytest.raises(UpstreamStatusError):
                await world.call(who)
    with pytest.raises(CircuitOpen):
        await world.call("alice")
    for _ in range(3):
        with pytest.raises(UpstreamStatusError):
            await world.call("carol")
    assert world.upstream.seen == {"alice-token": 5, "carol-token": 8, "bob-token": 1}
    assert [e.connection for e in world.hub.resilience.health(["gh"])[0].ejected] == [world.ids["alice"]]


async def test_health_shows_the_ejected_connection_and_its_time_left(world: World) -> None:
    """Operators see which connection; other callers how long, not whose (no secret either way)."""
    world.upstream.statuses["alice-token"] = 502
    for _ in range(5):
        with pytest.raises(UpstreamStatusError):
            await world.call("alice")
    world.time.offset += 10.0
    app = create_app(world.hub, manage_hub=False)
    rows = {}
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://toolbridge.test") as http:
            ops = await world.hub.agents.create("ops")
            for who in ("ops", "bob"):
                key = ops if who == "ops" else await world.hub.agents.create(who)
                answer = await http.get("/v1/health/connectors", headers={"Authorization": f"Bearer {key}"})
                assert answer.status_code == 200, answer.text
                (rows[who],) = answer.json()["connectors"]
            metrics = await http.get("/v1/metrics", headers={"Authorization": f"Bearer {key}"})
            assert metrics.status_code == 403  # bob's: metrics are the operators'
            metrics = await http.get("/v1/metrics", headers={"Authorization": f"Bearer {ops}"})
    assert 'toolbridge_ejected_connections{connector="gh"} 1.0' in metrics.text
    (ejected,) = rows["ops"]["ejected"]
    assert ejected["connection"] == world.ids["alice"] and ejected["ejections"] == 1
    assert 10.0 < ejected["seconds_left"] <= 20.0
    (hidden,) = rows["bob"]["ejected"]
    assert sorted(hidden) == ["ejections", "seconds_left"] and 10.0 < hidden["seconds_left"] <= 20.0
    assert rows["ops"]["breaker"] == "closed" and "alice-token" not in str(rows)


async def test_the_call_that_ejects_its_connection_is_not_retried_further(world: World) -> None:
    retry = RetryPolicy(max_attempts=5, base_delay=0.01)
    outlier = OutlierPolicy(consecutive_failures=3)
    world.hub.resilience.configure("gh", ResiliencePolicy(retry=retry, breaker=BREAKER, outlier=outlier))
    world.upstream.statuses["alice-token"] = 500
    with pytest.raises(UpstreamStatusError) as failed:
        await world.call("alice")
    assert failed.value.upstream_status == 500
    assert world.upstream.seen["alice-token"] == 3, "ejected at the third attempt: no fourth"
    with pytest.raises(CircuitOpen):
        await world.call("alice")
    assert world.upstream.seen["alice-token"] == 3
