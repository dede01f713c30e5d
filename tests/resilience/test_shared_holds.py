"""An upstream's pause (Retry-After, RateLimit: r=0) holds every replica's calls when they share Redis, and
this process's calls without it."""

from __future__ import annotations

import pytest

from tests.resilience.conftest import FakeTime, http_hub
from tests.resilience.test_ratelimit import _limiter, _redis
from toolbridge import Principal, RateLimited
from toolbridge.errors import UpstreamStatusError
from toolbridge.resilience import ResiliencePolicy, RetryPolicy
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


async def test_a_final_429_holds_the_next_calls_of_this_process(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    """Without retries left, the upstream's Retry-After still holds the connector (it held nothing)."""
    upstream.then(Reply(429, headers={"Retry-After": "30"}))
    hub, client = http_hub(upstream.url, fake_time, ResiliencePolicy(retry=ONE_ATTEMPT, max_rate_wait=60))
    async with client, hub:
        with pytest.raises(UpstreamStatusError) as info:
            await hub.call(Principal.local(), "up.fetch")
        assert info.value.retry_after == 30
        await hub.call(Principal.local(), "up.fetch")
    assert len(upstream.requests) == 2
    assert fake_time.sleeps and 29 <= fake_time.sleeps[0] <= 30  # the second call waited for the hold


@pytest.mark.redis
async def test_a_retry_after_seen_by_one_replica_holds_the_others(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(429, headers={"Retry-After": "100"}))
    async with _redis() as (redis, prefix):
        policy = ResiliencePolicy(retry=ONE_ATTEMPT)  # max_rate_wait 10 s: a 100 s hold is refused
        hub_a, client_a = http_hub(upstream.url, fake_time, policy, limiter=_limiter(redis, prefix))
        hub_b, client_b = http_hub(upstream.url, fake_time, policy, limiter=_limiter(redis, prefix))
        async with client_a, client_b, hub_a, hub_b:
            with pytest.raises(UpstreamStatusError):
                await hub_a.call(Principal.local(), "up.fetch")
            for _ in range(3):
                with pytest.raises(RateLimited) as info:
                    await hub_b.call(Principal.local(), "up.fetch")
                assert 90 < info.value.retry_after <= 100
            assert hub_b.resilience.health(["up"])[0].held_for > 90
    assert len(upstream.requests) == 1  # only replica A's call reached the upstream


@pytest.mark.redis
async def test_a_ratelimit_header_seen_by_one_replica_makes_the_others_wait(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(200, headers={"RateLimit": '"default";r=0;t=30'}), Reply(200))
    async with _redis() as (redis, prefix):
        policy = ResiliencePolicy(max_rate_wait=60)
        hub_a, client_a = http_hub(upstream.url, fake_time, policy, limiter=_limiter(redis, prefix))
        hub_b, client_b = http_hub(upstream.url, fake_time, policy, limiter=_limiter(redis, prefix))
        async with client_a, client_b, hub_a, hub_b:
            await hub_a.call(Principal.local(), "up.fetch")
            await hub_b.call(Principal.local(), "up.fetch")
    assert len(upstream.requests) == 2
    assert hub_b.resilience.waits and 25 < hub_b.resilience.waits[0] <= 30  # B waited for A's hold
