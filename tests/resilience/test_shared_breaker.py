"""Replicas sharing Redis share their circuit breakers: one window of outcomes, one open period, one set of
half-open trial calls, one reported transition. Without an answer from Redis each process's breaker decides.

Counts decide, never durations: the open periods that must pass are waited for in full (Redis's clock
only moves forward), and none is short enough for a slow machine to miss.
"""

from __future__ import annotations

import logging
import random

import anyio
import pytest

from tests.resilience.conftest import FakeTime, http_hub
from tests.resilience.test_ratelimit import _free_port, _limiter, _redis
from toolbridge import Principal
from toolbridge.errors import CircuitOpen, UpstreamStatusError
from toolbridge.resilience import (
    BreakerPolicy,
    BreakerState,
    MemoryLimiter,
    RedisBreakers,
    Resilience,
    ResiliencePolicy,
    RetryPolicy,
)
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio

TRIPS_AT_FOUR = ResiliencePolicy(
    retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(minimum_calls=4, window=10)
)


@pytest.mark.redis
async def test_failures_seen_by_two_replicas_open_the_breaker_of_both(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(*[Reply(500)] * 4)
    async with _redis() as (redis, prefix):
        hub_a, client_a = http_hub(upstream.url, fake_time, TRIPS_AT_FOUR, limiter=_limiter(redis, prefix))
        hub_b, client_b = http_hub(upstream.url, fake_time, TRIPS_AT_FOUR, limiter=_limiter(redis, prefix))
        async with client_a, client_b, hub_a, hub_b:
            for hub in (hub_a, hub_b, hub_a, hub_b):  # two failures each: neither alone reaches four
                with pytest.raises(UpstreamStatusError):
                    await hub.call(Principal.local(), "up.fetch")
            for hub in (hub_a, hub_b):
                with pytest.raises(CircuitOpen) as info:
                    await hub.call(Principal.local(), "up.fetch")
                assert "100% of recent calls" in info.value.message
                assert 40 <= info.value.retry_after <= 72  # 60 s, jittered ±20%
                assert hub.resilience.health(["up"])[0].breaker == "open"
            moved = hub_a.resilience.state("up").transitions + hub_b.resilience.state("up").transitions
    assert len(upstream.requests) == 4  # the open breaker kept both replicas off the upstream
    # one transition, reported by the replica whose failure tripped it (B's second)
    assert [(t.old, t.new, t.failure_rate) for t in moved] == [(BreakerState.CLOSED, BreakerState.OPEN, 1.0)]
    assert hub_b.resilience.state("up").transitions == moved


@pytest.mark.redis
async def test_half_open_trials_are_counted_across_replicas() -> None:
    policy = BreakerPolicy(minimum_calls=2, window=4, open_seconds=0.2, half_open_calls=2)
    async with _redis() as (redis, prefix):
        a = RedisBreakers(redis, prefix=prefix)
        b = RedisBreakers(redis, prefix=prefix)
        await a.record("up", policy, True, 0.2)
        opened = await b.record("up", policy, True, 0.2)
        assert opened is not None and (opened.left, opened.state) == (BreakerState.CLOSED, BreakerState.OPEN)
        refused = await a.admit("up", policy)
        assert refused is not None and not refused.allowed and 0 < refused.wait <= 0.2

        await anyio.sleep(0.3)  # past the open period on Redis's clock, which only moves forward
        first, second = await a.admit("up", policy), await b.admit("up", policy)
        third = await a.admit("up", policy)
        assert first is not None and first.allowed and first.left is BreakerState.OPEN
        assert second is not None and second.allowed and second.left is None
        assert third is not None and not third.allowed and third.wait == 1.0  # two trials are out
        assert third.state is BreakerState.HALF_OPEN

        await a.record("up", policy, False, 0.2)
        closed = await b.record("up", policy, False, 0.2)
        assert closed is not None and closed.left is BreakerState.HALF_OPEN
        assert closed.state is BreakerState.CLOSED
        after = await a.admit("up", policy)
        assert after is not None and after.allowed and after.failure_rate == 0.0  # a fresh window


@pytest.mark.redis
async def test_a_failed_trial_round_opens_it_again_for_everyone() -> None:
    policy = BreakerPolicy(minimum_calls=1, window=4, open_seconds=0.2, half_open_calls=2)
    async with _redis() as (redis, prefix):
        a, b = RedisBreakers(redis, prefix=prefix), RedisBreakers(redis, prefix=prefix)
        await a.record("up", policy, True, 0.2)
        await anyio.sleep(0.3)
        assert (await a.admit("up", policy)).allowed  # type: ignore[union-attr]
        assert (await b.admit("up", policy)).allowed  # type: ignore[union-attr]
        await a.record("up", policy, True, 30)
        reopened = await b.record("up", policy, False, 30)  # one of two trials failed: 50% ≥ 50%
        assert reopened is not None and reopened.left is BreakerState.HALF_OPEN
        assert reopened.state is BreakerState.OPEN and reopened.failure_rate == 0.5
        refused = await a.admit("up", policy)
        assert refused is not None and not refused.allowed and 25 < refused.wait <= 30


@pytest.mark.redis
async def test_trials_that_never_report_do_not_hold_the_breaker_half_open() -> None:
    """A replica that died mid-trial never records: after a round's length new trials are let in."""
    policy = BreakerPolicy(minimum_calls=1, window=4, open_seconds=0.2, half_open_calls=1)
    async with _redis() as (redis, prefix):
        breakers = RedisBreakers(redis, prefix=prefix)
        await breakers.record("up", policy, True, 0.2)
        await anyio.sleep(0.3)
        assert (await breakers.admit("up", policy)).allowed  # type: ignore[union-attr]  # never reports
        assert not (await breakers.admit("up", policy)).allowed  # type: ignore[union-attr]
        await anyio.sleep(0.3)
        again = await breakers.admit("up", policy)
        assert again is not None and again.allowed and again.state is BreakerState.HALF_OPEN


@pytest.mark.redis
async def test_the_window_keeps_the_latest_outcomes_of_all_replicas() -> None:
    """Outcomes beyond the window leave it oldest first, failures and successes alike (as the process's
    breaker's deque does): its failure rate is always that of the last ``window`` outcomes."""
    policy = BreakerPolicy(minimum_calls=1000, window=10)  # never trips: only the rate is watched
    outcomes = [random.Random(5).random() < 0.4 for _ in range(57)]
    async with _redis() as (redis, prefix):
        replicas = [RedisBreakers(redis, prefix=prefix) for _ in range(3)]
        for i, failure in enumerate(outcomes):
            verdict = await replicas[i % 3].record("up", policy, failure, 60)
            assert verdict is not None and verdict.state is BreakerState.CLOSED
            last = outcomes[max(0, i - 9) : i + 1]
            assert verdict.failure_rate == pytest.approx(sum(last) / len(last), abs=1e-6), i
        assert await redis.llen(prefix + "up:w") == 10


@pytest.mark.redis
async def test_breakers_of_different_connectors_and_prefixes_are_apart() -> None:
    policy = BreakerPolicy(minimum_calls=1, window=4)
    async with _redis() as (redis, prefix):
        breakers = RedisBreakers(redis, prefix=prefix)
        await breakers.record("up", policy, True, 60)
        other = await breakers.admit("down", policy)
        elsewhere = await RedisBreakers(redis, prefix=prefix + "other:").admit("up", policy)
        assert other is not None and other.allowed and elsewhere is not None and elsewhere.allowed


async def test_without_an_answer_from_redis_the_process_breaker_decides(
    upstream: Upstream, fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as redis_asyncio

    upstream.then(*[Reply(500)] * 4)
    dead = redis_asyncio.Redis(host="127.0.0.1", port=_free_port())  # nothing listens
    hub, client = http_hub(upstream.url, fake_time, TRIPS_AT_FOUR)
    hub.resilience.breakers = RedisBreakers(dead, timeout=0.5, retry_after=3600)  # asked once
    try:
        async with client, hub:
            with caplog.at_level(logging.WARNING, logger="toolbridge.resilience"):
                for _ in range(4):
                    with pytest.raises(UpstreamStatusError):
                        await hub.call(Principal.local(), "up.fetch")
                with pytest.raises(CircuitOpen):
                    await hub.call(Principal.local(), "up.fetch")
    finally:
        await dead.aclose()
    assert len(upstream.requests) == 4
    assert "did not answer (" in caplog.text and "this process's breaker decides" in caplog.text
    assert caplog.text.count("did not answer") == 1  # then left alone for retry_after: no wait per call
    assert hub.resilience.health(["up"])[0].breaker == "open"


def test_a_limiter_that_shares_state_shares_breakers_too() -> None:
    import redis.asyncio as redis_asyncio

    assert Resilience().breakers is None
    assert Resilience(limiter=MemoryLimiter(lambda: 0.0)).breakers is None
    client = redis_asyncio.Redis(host="127.0.0.1", port=_free_port())  # built only: nothing is sent
    shared = Resilience(limiter=_limiter(client, "p:"), rng=random.Random(1))
    assert isinstance(shared.breakers, RedisBreakers)


@pytest.mark.redis
async def test_health_and_metrics_read_half_open_once_the_shared_open_period_is_over(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    """The shared breaker is only heard of when a call asks: once the open period it told of has passed,
    health and metrics say ``half_open`` (what the next call finds), not ``open`` until a call comes."""
    upstream.then(*[Reply(500)] * 4)
    async with _redis() as (redis, prefix):
        hub, client = http_hub(upstream.url, fake_time, TRIPS_AT_FOUR, limiter=_limiter(redis, prefix))
        async with client, hub:
            for _ in range(4):
                with pytest.raises(UpstreamStatusError):
                    await hub.call(Principal.local(), "up.fetch")
            assert hub.resilience.health(["up"])[0].breaker == "open"
            fake_time.offset += 73  # past the longest jittered opening (60 s + 20%)
            assert hub.resilience.health(["up"])[0].breaker == "half_open"
            metrics = hub.audit.metrics.render(hub.resilience.health(["up"]), tools=1).decode()
            assert 'toolbridge_breaker_state{connector="up"} 1.0' in metrics
