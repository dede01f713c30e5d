"""RELIABILITY.md C: GCRA limits (L1, L2), upstream quota headers (L3), Redis-shared state."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import require_service
from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Hub, Principal, RateLimited
from toolbridge.errors import ConfigurationError
from toolbridge.resilience import MemoryLimiter, RedisLimiter, ResiliencePolicy, parse_rate, parse_ratelimit
from toolbridge.resilience._ratelimit import redacted_redis_url
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


@asynccontextmanager
async def _redis() -> AsyncIterator[tuple[Any, str]]:
    """A client of the shared Redis and a key prefix of this test's own (its keys deleted after)."""
    import redis.asyncio as redis_asyncio

    require_service("Redis", "127.0.0.1", 6379)
    client = redis_asyncio.Redis(host="127.0.0.1", port=6379)
    prefix = f"test:{secrets.token_hex(6)}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def _limiter(client: Any, prefix: str, clock: Callable[[], float] | None = None) -> RedisLimiter:
    return RedisLimiter(
        client, clock, prefix=prefix + "rl:", hold_prefix=prefix + "hold:", breaker_prefix=prefix + "breaker:"
    )


@pytest.mark.redis
async def test_redis_limiter_is_shared_between_replicas() -> None:
    async with _redis() as (client, prefix):
        replica_a, replica_b = _limiter(client, prefix), _limiter(client, prefix)
        limit = parse_rate("1/hour", burst=2)  # an hour per slot: no test is slow enough to matter
        assert await replica_a.try_acquire("k", limit) == 0.0
        assert await replica_b.try_acquire("k", limit) == 0.0
        assert 3500 < await replica_a.try_acquire("k", limit) <= 3600
        assert await replica_b.reserve("k", limit, max_wait=1800) is None
        booked = await replica_b.reserve("k", limit, max_wait=7200)
        assert booked is not None and 3500 < booked <= 3600


@pytest.mark.redis
@pytest.mark.parametrize("skew", [30.0, -30.0, 3600.0])
async def test_replicas_with_skewed_clocks_share_one_schedule(skew: float) -> None:
    """Redis's clock decides: a replica whose clock is off neither blocks the others (its clock fast: they
    waited the skew, 30.1 s for a 10/second limit) nor takes the slot they booked (its clock slow)."""
    async with _redis() as (client, prefix):
        off = _limiter(client, prefix, lambda: time.time() + skew)
        right = _limiter(client, prefix, time.time)
        limit = parse_rate("1/minute", burst=1)
        assert await off.try_acquire("k", limit) == 0.0
        assert 50 < await right.try_acquire("k", limit) <= 60  # one interval, not 60 ± the skew
        assert await right.reserve("k", limit, max_wait=0) is None
        assert 50 < await off.try_acquire("k", limit) <= 60
        assert await right.try_acquire("other", limit) == 0.0
        assert 50 < await off.try_acquire("other", limit) <= 60


@pytest.mark.redis
async def test_a_hold_is_shared_and_only_ever_extended() -> None:
    async with _redis() as (client, prefix):
        replica_a, replica_b = _limiter(client, prefix), _limiter(client, prefix)
        assert await replica_b.held("up") == 0.0
        await replica_a.hold("up", 100)
        assert 90 < await replica_b.held("up") <= 100
        await replica_b.hold("up", 5)  # a shorter pause asked later does not cut the longer one
        assert 90 < await replica_a.held("up") <= 100
        await replica_b.hold("up", 200)
        assert 190 < await replica_a.held("up") <= 200
        assert await replica_a.held("other") == 0.0


async def test_a_hold_store_that_is_down_leaves_the_hold_to_the_process() -> None:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis(host="127.0.0.1", port=9)  # nothing listens
    try:
        limiter = RedisLimiter(client, timeout=0.2)
        await limiter.hold("up", 10)  # logged, not raised: the call that learned of it goes on
        assert await limiter.held("up") == 0.0
    finally:
        await client.aclose()


async def test_from_url_fails_at_start_naming_redis_without_its_password() -> None:
    from toolbridge.errors import StorageError

    limiter = RedisLimiter.from_url(f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0")
    with pytest.raises(StorageError) as info:
        async with limiter:
            pass
    message = f"{info.value.message} {info.value.hint}"
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in message and "s3cret" not in message
    assert "TOOLBRIDGE_REDIS" in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:p:w@h/1", "redis://user:***@h/1"),
        (
            "rediss://h:6380/0?password=pw&ssl_cert_reqs=none",
            "rediss://h:6380/0?password=***&ssl_cert_reqs=none",
        ),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_redis_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redacted_redis_url(url) == shown


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
