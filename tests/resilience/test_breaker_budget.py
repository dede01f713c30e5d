"""RELIABILITY.md A: circuit breaking (R10, R11) and the retry budget (R9)."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Principal
from toolbridge.errors import CircuitOpen, UpstreamStatusError
from toolbridge.resilience import (
    Attempt,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    Resilience,
    ResiliencePolicy,
    RetryPolicy,
)
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio


def breaker(fake: FakeTime, **kwargs: object) -> CircuitBreaker:
    return CircuitBreaker("up", BreakerPolicy(**kwargs), clock=fake.clock, rng=random.Random(3))  # type: ignore[arg-type]


def test_r10a_sixty_percent_failures_open_the_breaker(fake_time: FakeTime) -> None:
    b = breaker(fake_time, minimum_calls=100)
    outcomes = [True] * 60 + [False] * 40
    random.Random(1).shuffle(outcomes)
    for failed in outcomes:
        b.record(failed)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as info:
        b.before_call()
    assert 48 <= info.value.retry_after <= 72  # 60 s ± 20% jitter


def test_r10b_below_minimum_calls_stays_closed(fake_time: FakeTime) -> None:
    b = breaker(fake_time, minimum_calls=10)
    for _ in range(9):
        b.record(True)
    assert b.state is BreakerState.CLOSED


async def test_r10a_open_breaker_never_reaches_the_upstream(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(*[Reply(500)] * 100)
    pol = ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(minimum_calls=20))
    hub, client = http_hub(upstream.url, fake_time, pol)
    async with client, hub:
        for _ in range(20):
            with pytest.raises(UpstreamStatusError):
                await hub.call(Principal.local(), "up.fetch")
        before = len(upstream.requests)
        with pytest.raises(CircuitOpen, match="connector 'up' is failing"):
            await hub.call(Principal.local(), "up.fetch")
        [health] = hub.resilience.health(["up"])
    assert len(upstream.requests) == before == 20
    assert (health.breaker, health.failure_rate, health.attempts) == ("open", 1.0, 20)


async def test_r10c_client_errors_never_trip_the_breaker(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(*[Reply(422)] * 30)
    pol = ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(minimum_calls=20))
    hub, client = http_hub(upstream.url, fake_time, pol)
    async with client, hub:
        for _ in range(30):
            with pytest.raises(UpstreamStatusError):
                await hub.call(Principal.local(), "up.fetch")
        assert hub.resilience.state("up").breaker.state is BreakerState.CLOSED


def test_r11_half_open_admits_exactly_n_trials_then_closes(fake_time: FakeTime) -> None:
    b = breaker(fake_time, minimum_calls=10, half_open_calls=3)
    for _ in range(10):
        b.record(True)
    fake_time.offset += 73  # past the longest jittered wait
    assert b.state is BreakerState.HALF_OPEN
    for _ in range(3):
        b.before_call()
    with pytest.raises(CircuitOpen):
        b.before_call()  # a fourth trial is refused
    for _ in range(3):
        b.record(False)
    assert b.state is BreakerState.CLOSED


def test_r11_failed_trials_reopen_with_a_new_jittered_wait(fake_time: FakeTime) -> None:
    b = breaker(fake_time, minimum_calls=10, half_open_calls=2)
    for _ in range(10):
        b.record(True)
    fake_time.offset += 73
    b.before_call()
    b.before_call()
    b.record(True)
    b.record(True)
    assert b.state is BreakerState.OPEN
    fake_time.offset += 10
    assert b.state is BreakerState.OPEN


async def test_r9_outage_does_not_multiply_load(fake_time: FakeTime) -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        raise UpstreamStatusError("down", upstream_status=503)

    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(5))
    resilience.configure(
        "up", ResiliencePolicy(retry=RetryPolicy(max_attempts=3), breaker=BreakerPolicy(enabled=False))
    )
    attempt = Attempt("up", "up.fetch", idempotent=True, deadline=None)
    retries_seen: list[int] = []

    async def one() -> None:
        retries_seen.append(resilience.state("up").budget.retrying)
        with pytest.raises(UpstreamStatusError):
            await resilience.run(attempt, failing)

    async with anyio.create_task_group() as tg:
        for _ in range(1000):
            tg.start_soon(one)
    # without a budget: 3000 attempts. gRPC throttling stops retries once tokens fall to half.
    policy = RetryPolicy()
    assert calls < 1000 + policy.throttle_max_tokens / 2 + policy.budget_min
    assert max(retries_seen) <= max(policy.budget_min, policy.budget_ratio * 1000)


async def test_a_call_whose_deadline_passed_before_its_attempt_is_not_answered_as_a_pause(
    fake_time: FakeTime,
) -> None:
    """On a loaded machine the call deadline can pass before the first attempt starts; with nothing to wait
    for, that was a RateLimited 'the upstream asked for a pause (wait 0 s)' — a pause nobody asked for (CI:
    tests/test_hub.py::test_call_deadline). The attempt goes ahead; the hub's call deadline answers it."""
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(5))
    resilience.configure("up", ResiliencePolicy(breaker=BreakerPolicy(enabled=False)))
    attempt = Attempt("up", "up.fetch", idempotent=True, deadline=fake_time.clock() - 0.01)

    async def answered() -> str:
        return "ok"

    assert await resilience.run(attempt, answered) == "ok"
