"""A test-sized chaos run (bench/chaos.py runs the full 10,000 calls): 30% injected faults of every kind."""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime
from toolbridge import Hub, Limits, Principal, ToolbridgeError
from toolbridge.connectors import Invocation
from toolbridge.errors import OutcomeUnknown
from toolbridge.resilience import BreakerPolicy, Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.testing import ChaosConnector, Fault

pytestmark = pytest.mark.anyio

FAULTS = [
    Fault("status", 0.08, status=503),
    Fault("status", 0.04, status=429, retry_after=0.5),
    Fault("reset_before", 0.06),
    Fault("reset_after", 0.06),
    Fault("latency", 0.02, seconds=0.01),
    Fault("hang", 0.01),
    Fault("truncated", 0.02),
    Fault("trickle", 0.01, seconds=0.01),
]
CHAOS_POLICY = ResiliencePolicy(
    retry=RetryPolicy(
        max_attempts=8,
        base_delay=0.05,
        max_delay=1.0,
        attempt_timeout=patience(1.0),  # ends the hangs; a busy machine must not end other attempts
        throttle_max_tokens=1000,
        throttle_token_ratio=1.0,
        budget_ratio=1.0,
    ),
    breaker=BreakerPolicy(minimum_calls=50, failure_rate=0.6),
)


def chaos_hub(time: FakeTime, seed: int) -> tuple[Hub, Counter[str], Counter[str]]:
    keyed_effects: Counter[str] = Counter()  # applications per idempotency key (deduplicated upstream)
    unkeyed_effects: Counter[str] = Counter()  # applications per logical operation without a key
    seen: dict[str, int] = {}
    resilience = Resilience(clock=time.clock, sleep=time.sleep, rng=random.Random(seed))
    hub = Hub(resilience=resilience, limits=Limits(call_timeout=60))

    @hub.tool(connector="svc", read_only=True)
    async def read(n: int) -> int:
        return n

    @hub.tool(connector="svc")
    async def write(op: str, invocation: Invocation) -> int:
        key = invocation.idempotency_key  # the key travels (a tool without an Invocation can't send it)
        if key is not None:  # Stripe-style: an effect per key, replays answer the first result
            if key not in seen:
                seen[key] = len(seen)
                keyed_effects[key] += 1
            return seen[key]
        unkeyed_effects[op] += 1
        return 0

    resilience.configure("svc", CHAOS_POLICY)
    hub.wrap_connector("svc", lambda inner: ChaosConnector(inner, FAULTS, seed=seed))
    return hub, keyed_effects, unkeyed_effects


async def test_chaos_run_reads_succeed_and_writes_never_duplicate(fake_time: FakeTime) -> None:
    hub, keyed, unkeyed = chaos_hub(fake_time, seed=11)
    outcomes: Counter[str] = Counter()

    async def one(i: int) -> None:
        kind = ("read", "keyed", "unkeyed")[i % 3]
        try:
            if kind == "read":
                await hub.call(Principal.local(), "svc.read", {"n": i})
            elif kind == "keyed":
                await hub.call(Principal.local(), "svc.write", {"op": f"k{i}"}, idempotency_key=f"k{i}")
            else:
                await hub.call(Principal.local(), "svc.write", {"op": f"u{i}"})
            outcomes[f"{kind}:ok"] += 1
        except OutcomeUnknown:
            outcomes[f"{kind}:unknown"] += 1
        except ToolbridgeError as exc:
            outcomes[f"{kind}:{exc.code}"] += 1

    async with hub:
        with anyio.fail_after(patience(60)):  # no hung task survives
            async with anyio.create_task_group() as tg:
                for i in range(600):
                    tg.start_soon(one, i)
        state = hub.resilience.state("svc")
    chaos = hub.connector("svc")
    assert isinstance(chaos, ChaosConnector)
    assert set(chaos.injected) == {f.kind for f in FAULTS}  # every kind happened
    assert outcomes["read:ok"] == 200, outcomes  # every idempotent call succeeded
    assert outcomes["keyed:ok"] == 200, outcomes  # keyed writes are retried safely...
    assert max(keyed.values()) == 1  # ...and applied once each
    assert max(unkeyed.values()) == 1  # unkeyed writes are never applied twice
    assert outcomes["unkeyed:unknown"] > 0  # their lost answers are reported as such, not retried
    assert state.budget.active == 0 and state.bulkhead.borrowed_tokens == 0  # back to baseline


async def test_breaker_opens_under_an_outage_and_recovers(fake_time: FakeTime) -> None:
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(2))
    hub = Hub(resilience=resilience)

    @hub.tool(connector="svc", read_only=True)
    async def read() -> str:
        return "ok"

    resilience.configure(
        "svc",
        ResiliencePolicy(
            retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(minimum_calls=20, half_open_calls=5)
        ),
    )
    outage = ChaosConnector(hub.connector("svc"), [Fault("status", 1.0, status=503)], seed=1)
    hub.wrap_connector("svc", lambda inner: outage)
    async with hub:
        for _ in range(20):
            with pytest.raises(ToolbridgeError):
                await hub.call(Principal.local(), "svc.read")
        assert resilience.state("svc").breaker.state.value == "open"
        outage._faults = []  # the upstream recovers
        fake_time.offset += 75
        for _ in range(5):
            assert (await hub.call(Principal.local(), "svc.read")).value == "ok"
        assert resilience.state("svc").breaker.state.value == "closed"
    assert outage.injected["status"] == 20  # nothing reached the upstream while open


TRANSIENT_30 = [
    Fault("status", 0.08, status=503),
    Fault("status", 0.06, status=500),
    Fault("status", 0.04, status=429, retry_after=1),
    Fault("reset_before", 0.05),
    Fault("reset_after", 0.05),
    Fault("truncated", 0.02),
]


async def test_default_budgets_let_reads_ride_out_30_percent_transient_faults(fake_time: FakeTime) -> None:
    """Regression: with the old defaults (3 attempts, throttle 10 tokens / 0.1, budget 20 %) 27 % of
    idempotent reads failed at 30 % faults; the budgets must still stop an outage's retries (R9)."""
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(4))
    hub = Hub(resilience=resilience)  # the default policy, as users get it

    @hub.tool(connector="svc", read_only=True)
    async def read(n: int) -> int:
        return n

    hub.wrap_connector("svc", lambda inner: ChaosConnector(inner, TRANSIENT_30, seed=4))
    outcomes: Counter[str] = Counter()
    clients = anyio.CapacityLimiter(64)  # a fleet of agents, 64 calls in flight at any time

    async def one(i: int) -> None:
        try:
            async with clients:
                await hub.call(Principal.local(), "svc.read", {"n": i})
            outcomes["ok"] += 1
        except ToolbridgeError as exc:
            outcomes[exc.code] += 1

    async with hub, anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, i)
    assert outcomes["ok"] >= 990, outcomes
