"""Overhead of the resilience layer on a healthy call (goal: ≤ 30 µs median).

Runs the same no-op coroutine 20,000 times directly and through ``Resilience.run`` (rate limit with a
generous limit, bulkhead, breaker, attempt loop under a deadline), interleaved in rounds so machine noise
hits both alike, and prints median and p99 of each and their difference. With Redis on 127.0.0.1:6379
(``--redis URL``; ``--redis none`` skips it) it also times the layer of a replica that shares state
through Redis: the upstream holds read before each attempt, with the breaker off and with the shared
breaker (two more round trips per attempt). The 30 µs goal is the layer's own, without Redis.

    uv run python bench/resilience.py [--calls N] [--redis URL|none]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from typing import Any

import anyio

from toolbridge.resilience import Attempt, BreakerPolicy, RedisLimiter, Resilience, ResiliencePolicy


async def noop() -> int:
    return 1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def attempt() -> Attempt:
    return Attempt("bench", "bench.noop", idempotent=True, deadline=anyio.current_time() + 60)


async def measure(calls: int, redis: Any) -> dict[str, list[float]]:
    resilience = Resilience()
    resilience.configure("bench", ResiliencePolicy(rate="1000000/second"))
    plain = Resilience()
    targets = {
        "direct": lambda: noop(),
        "layer (breaker, budget, bulkhead, deadline)": lambda: plain.run(attempt(), noop),
        "layer + outbound rate limit": lambda: resilience.run(attempt(), noop),
    }
    if redis is not None:
        prefix = f"bench:{secrets.token_hex(4)}:"
        limiter = RedisLimiter(
            redis, prefix=prefix, hold_prefix=prefix + "hold:", breaker_prefix=prefix + "b:"
        )
        holds_only, shared = Resilience(limiter=limiter), Resilience(limiter=limiter)
        holds_only.configure("bench", ResiliencePolicy(breaker=BreakerPolicy(enabled=False)))
        targets["replica on Redis: holds, breaker off"] = lambda: holds_only.run(attempt(), noop)
        targets["replica on Redis: holds + shared breaker"] = lambda: shared.run(attempt(), noop)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    rounds = 10
    for _ in range(rounds):
        for name, fn in targets.items():
            for _ in range(calls // rounds):
                start = time.perf_counter_ns()
                await fn()
                samples[name].append((time.perf_counter_ns() - start) / 1000)
    return samples


async def with_redis(calls: int, url: str) -> dict[str, list[float]]:
    """Measure, with a Redis client when ``url`` answers (its bench keys deleted after)."""
    if url == "none":
        return await measure(calls, None)
    import redis.asyncio as redis_asyncio
    from redis.exceptions import RedisError

    client = redis_asyncio.Redis.from_url(url, socket_connect_timeout=2)
    try:
        try:
            await client.ping()
        except (OSError, RedisError) as exc:
            print(f"(Redis at {url} does not answer: {type(exc).__name__}; its rows are left out)")
            return await measure(calls, None)
        return await measure(calls, client)
    finally:
        keys = [key async for key in client.scan_iter(match="bench:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL, or 'none'")
    args = parser.parse_args()
    samples = anyio.run(with_redis, args.calls, args.redis)
    base = statistics.median(samples["direct"])
    print(f"{'target':46} {'median µs':>10} {'p99 µs':>8} {'overhead µs':>12}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:46} {median:10.2f} {pct(values, 0.99):8.2f} {median - base:12.2f}")
    worst = max(statistics.median(v) for k, v in samples.items() if "Redis" not in k) - base
    print(f"\ngoal: overhead ≤ 30 µs median — {'met' if worst <= 30 else 'NOT met'} ({worst:.2f} µs)")


if __name__ == "__main__":
    main()
