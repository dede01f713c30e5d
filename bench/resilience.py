"""Overhead of the resilience layer on a healthy call (goal: ≤ 30 µs median).

Runs the same no-op coroutine 20,000 times directly and through ``Resilience.run`` (rate limit with a
generous limit, bulkhead, breaker, attempt loop under a deadline), interleaved in rounds so machine noise
hits both alike, and prints median and p99 of each and their difference.

    uv run python bench/resilience.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

from toolbridge.resilience import Attempt, Resilience, ResiliencePolicy


async def noop() -> int:
    return 1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(calls: int) -> dict[str, list[float]]:
    resilience = Resilience()
    resilience.configure("bench", ResiliencePolicy(rate="1000000/second"))
    plain = Resilience()
    targets = {
        "direct": lambda: noop(),
        "layer (breaker, budget, bulkhead, deadline)": lambda: plain.run(
            Attempt("bench", "bench.noop", idempotent=True, deadline=anyio.current_time() + 60), noop
        ),
        "layer + outbound rate limit": lambda: resilience.run(
            Attempt("bench", "bench.noop", idempotent=True, deadline=anyio.current_time() + 60), noop
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    rounds = 10
    for _ in range(rounds):
        for name, fn in targets.items():
            for _ in range(calls // rounds):
                start = time.perf_counter_ns()
                await fn()
                samples[name].append((time.perf_counter_ns() - start) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    samples = anyio.run(measure, args.calls)
    base = statistics.median(samples["direct"])
    print(f"{'target':46} {'median µs':>10} {'p99 µs':>8} {'overhead µs':>12}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:46} {median:10.2f} {pct(values, 0.99):8.2f} {median - base:12.2f}")
    worst = max(statistics.median(v) for v in samples.values()) - base
    print(f"\ngoal: overhead ≤ 30 µs median — {'met' if worst <= 30 else 'NOT met'} ({worst:.2f} µs)")


if __name__ == "__main__":
    main()
