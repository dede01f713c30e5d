"""Full-size chaos run: 10,000 calls with 30% injected faults of every kind (CI runs a 600-call version).

Checks, and prints: every idempotent call (reads, and writes with an idempotency key) succeeded within its
deadline; keyed writes were applied once each; writes without a key were never applied twice (their lost
answers come back as outcome_unknown); no task hung; the connector's bulkhead and budget returned to
their baseline. Waits are real but short (base delay 10 ms).

    uv run python bench/chaos.py [--calls 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import anyio

from toolbridge import Hub, Limits, Principal, ToolbridgeError
from toolbridge.errors import OutcomeUnknown
from toolbridge.resilience import BreakerPolicy, Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.testing import ChaosConnector, Fault

FAULTS = [
    Fault("status", 0.08, status=503),
    Fault("status", 0.04, status=429, retry_after=0.05),
    Fault("reset_before", 0.06),
    Fault("reset_after", 0.06),
    Fault("latency", 0.02, seconds=0.02, jitter=0.01),
    Fault("hang", 0.01),
    Fault("truncated", 0.02),
    Fault("trickle", 0.01, seconds=0.02),
]
POLICY = ResiliencePolicy(
    retry=RetryPolicy(
        max_attempts=8,
        base_delay=0.01,
        max_delay=0.2,
        attempt_timeout=0.2,
        throttle_max_tokens=10_000,
        throttle_token_ratio=1.0,
        budget_ratio=1.0,
    ),
    breaker=BreakerPolicy(minimum_calls=100, failure_rate=0.6),
    rate=None,
)


def build(seed: int) -> tuple[Hub, Counter[str], Counter[str]]:
    keyed: Counter[str] = Counter()
    unkeyed: Counter[str] = Counter()
    resilience = Resilience(rng=random.Random(seed))
    hub = Hub(resilience=resilience, limits=Limits(call_timeout=30))

    @hub.tool(connector="svc", read_only=True)
    async def read(n: int) -> int:
        return n

    @hub.tool(connector="svc")
    async def write(op: str, key: str | None = None) -> int:
        if key is not None:
            if keyed[key] == 0:
                keyed[key] += 1
            return 1
        unkeyed[op] += 1
        return 0

    resilience.configure("svc", POLICY)
    hub.wrap_connector("svc", lambda inner: ChaosConnector(inner, FAULTS, seed=seed))
    return hub, keyed, unkeyed


async def run(calls: int, seed: int) -> int:
    hub, keyed, unkeyed = build(seed)
    outcomes: Counter[str] = Counter()
    limiter = anyio.CapacityLimiter(256)

    async def one(i: int) -> None:
        kind = ("read", "keyed", "unkeyed")[i % 3]
        async with limiter:
            try:
                if kind == "read":
                    await hub.call(Principal.local(), "svc.read", {"n": i})
                elif kind == "keyed":
                    await hub.call(
                        Principal.local(),
                        "svc.write",
                        {"op": f"k{i}", "key": f"k{i}"},
                        idempotency_key=f"k{i}",
                    )
                else:
                    await hub.call(Principal.local(), "svc.write", {"op": f"u{i}"})
                outcomes[f"{kind}: ok"] += 1
            except OutcomeUnknown:
                outcomes[f"{kind}: outcome_unknown"] += 1
            except ToolbridgeError as exc:
                outcomes[f"{kind}: {exc.code}"] += 1

    started = time.perf_counter()
    async with hub:
        with anyio.fail_after(600):
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    tg.start_soon(one, i)
        state = hub.resilience.state("svc")
        chaos = hub.connector("svc")
    elapsed = time.perf_counter() - started
    assert isinstance(chaos, ChaosConnector)
    print(
        f"{calls} calls in {elapsed:.1f} s; faults injected: {dict(chaos.injected)} "
        f"({sum(chaos.injected.values())} in {state.attempts} attempts)"
    )
    for key in sorted(outcomes):
        print(f"  {key:28} {outcomes[key]:6}")
    checks = {
        "every read succeeded": outcomes["read: ok"] == len(range(0, calls, 3)),
        "every keyed write succeeded": outcomes["keyed: ok"] == len(range(1, calls, 3)),
        "keyed writes applied once": max(keyed.values(), default=1) == 1,
        "unkeyed writes never applied twice": max(unkeyed.values(), default=1) == 1,
        "bulkhead and budget back to baseline": state.budget.active == 0
        and state.bulkhead.borrowed_tokens == 0,
    }
    for name, ok in checks.items():
        print(f"  {'ok ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    raise SystemExit(anyio.run(run, args.calls, args.seed))


if __name__ == "__main__":
    main()
