"""RELIABILITY.md C: GCRA limits (L1, L2), upstream quota headers (L3), Redis-shared state."""

from __future__ import annotations

import math
import random
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require_service
from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Hub, Principal, RateLimited
from toolbridge.errors import ConfigurationError
from toolbridge.resilience import MemoryLimiter, RedisLimiter, ResiliencePolicy, parse_rate, parse_ratelimit
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio


async def test_l1_burst_then_gcra_wait() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(lambda: now[0])
    limit = parse_rate("10/second", burst=5)
    waits = [await limiter.try_acquire("k", limit) for _ in range(6)]
    assert waits[:5] == [0.0] * 5
    assert waits[5] == pytest.approx(0.1)  # exactly one emission interval


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_l1_no_window_ever_admits_more_than_the_limit(gaps: list[float]) -> None:
    import anyio

    async def run() -> list[float]:
        now = [0.0]
        limiter = MemoryLimiter(lambda: now[0])
        limit = parse_rate("5/second", burst=5)
        admitted = []
        for gap in gaps:
            now[0] += gap
            if await limiter.try_acquire("k", limit) == 0.0:
                admitted.append(now[0])
        return admitted

    admitted = anyio.run(run)
    for i, start in enumerate(admitted):  # any 1-second window: at most burst + rate·1 s
        inside = [t for t in admitted[i:] if t < start + 1.0]
        assert len(inside) <= 10


async def test_l1_and_l2_agent_limits_are_per_tenant() -> None:
    hub = Hub(agents={"a": ["*"], "b": ["*"]}, agent_rates={"a": "2/minute", "b": "2/minute"})

    @hub.tool(connector="t", read_only=True)
    async def ping() -> str:
        return "pong"

    async with hub:
        a = await hub.authenticate(await hub.agents.create("a"))
        b = await hub.authenticate(await hub.agents.create("b"))
        await hub.call(a, "t.ping")
        await hub.call(a, "t.ping")
        with pytest.raises(RateLimited) as info:
            await hub.call(a, "t.ping")
        assert 29 <= info.value.retry_after <= 30 and info.value.status == 429
        assert (await hub.call(b, "t.ping")).value == "pong"  # b's share is untouched


async def test_outbound_limit_waits_instead_of_provoking_429(upstream: Upstream, fake_time: FakeTime) -> None:
    hub, client = http_hub(upstream.url, fake_time, ResiliencePolicy(rate="2/second", burst=1))
    async with client, hub:
        for _ in range(3):
            await hub.call(Principal.local(), "up.fetch")
    assert len(upstream.requests) == 3
    assert [round(w, 2) for w in hub.resilience.waits] == [0.5, 1.0] or len(hub.resilience.waits) == 2


async def test_l3a_ratelimit_header_on_success_holds_calls(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(200, headers={"RateLimit": '"default";r=0;t=30'}), Reply(200))
    hub, client = http_hub(upstream.url, fake_time, ResiliencePolicy(max_rate_wait=60))
    async with client, hub:
        await hub.call(Principal.local(), "up.fetch")
        await hub.call(Principal.local(), "up.fetch")
    assert hub.resilience.waits and 29 <= hub.resilience.waits[0] <= 30


async def test_l3b_retry_after_wins_over_ratelimit_reset(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(429, headers={"Retry-After": "10", "RateLimit": '"default";r=0;t=60'}), Reply(200))
    hub, client = http_hub(upstream.url, fake_time, ResiliencePolicy(max_rate_wait=120))
    async with client, hub:
        await hub.call(Principal.local(), "up.fetch")
    assert 10 <= fake_time.sleeps[0] < 11


@pytest.mark.parametrize("value", ['"default";r=x;t=30', "", ";;", '"p";q=1'])
def test_l3c_malformed_ratelimit_is_ignored(value: str) -> None:
    assert parse_ratelimit(value) is None


@pytest.mark.parametrize("text", ["5000/hour", "10/second", "100/15min", "1/day"])
def test_rates_parse(text: str) -> None:
    limit = parse_rate(text)
    assert limit.count > 0 and limit.period > 0


@pytest.mark.parametrize("text", ["fast", "0/second", "5/fortnight", "-1/s"])
def test_bad_rates_are_configuration_errors(text: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a rate"):
        parse_rate(text)


@pytest.mark.redis
async def test_redis_limiter_is_shared_between_replicas() -> None:
    import redis.asyncio as redis_asyncio

    require_service("Redis", "127.0.0.1", 6379)
    client = redis_asyncio.Redis(host="127.0.0.1", port=6379)
    try:
        now = [5000.0 + random.random()]
        key = f"test:{secrets.token_hex(4)}"
        replica_a = RedisLimiter(client, lambda: now[0])
        replica_b = RedisLimiter(client, lambda: now[0])
        limit = parse_rate("1/second", burst=2)
        assert await replica_a.try_acquire(key, limit) == 0.0
        assert await replica_b.try_acquire(key, limit) == 0.0
        wait = await replica_a.try_acquire(key, limit)
        assert math.isclose(wait, 1.0, abs_tol=1e-6)
        assert await replica_b.reserve(key, limit, max_wait=0.5) is None
        assert await replica_b.reserve(key, limit, max_wait=2.0) == pytest.approx(1.0)
    finally:
        await client.aclose()


@pytest.mark.parametrize("fail_open", [False, True])
async def test_l4_unreachable_store_decides_within_bounded_time(fail_open: bool) -> None:
    import time

    import redis.asyncio as redis_asyncio

    from toolbridge.errors import StorageError

    client = redis_asyncio.Redis(host="127.0.0.1", port=9, socket_connect_timeout=60)  # nothing listens
    limiter = RedisLimiter(client, time.time, timeout=0.2, fail_open=fail_open)
    started = time.monotonic()
    try:
        if fail_open:
            assert await limiter.try_acquire("k", parse_rate("1/second")) == 0.0
        else:
            with pytest.raises(StorageError, match="did not answer within 0.2 s"):
                await limiter.try_acquire("k", parse_rate("1/second"))
    finally:
        await client.aclose()
    # decided by the limiter's own 0.2 s bound, not the client's 60 s one (a wide bound, not a timing claim)
    assert time.monotonic() - started < 20
