"""Pipelines benchmark:

1. Engine overhead per step on SQLite (durable state included): a 5-step pipeline of a no-op Python tool
   run in-process, against the same five calls made directly with ``hub.call`` in the same run — with an
   idempotency key each, as the steps have (baseline), and without. Per run: (pipeline time − time of the
   five direct keyed calls) / 5; median and p99 over the runs. The same in CPU time of the process
   (``time.process_time``: the event loop and the SQLite threads), which a busy machine disturbs less
   than wall time.
2. Five-step no-op runs per second on PostgreSQL with two ``toolbridge worker`` processes: runs queued
   first, then both workers started. The goal's measure: from the first step's start (a worker is up
   and working) to the last run's end, as the workers stored them. Also printed: from the workers'
   start (their start-up — importing, opening the hub — included) and from the first run's end to the
   last's (steady state).
   The driver waits with one count query every 50 ms on one connection; its CPU time meanwhile is
   printed (it shares the two cores with the workers and the database).

    uv run python bench/pipelines.py [--runs 300] [--queued 1000] [--skip-postgres]

Goals (issue #19): ≤ 2 ms engine overhead per step on SQLite; ≥ 100 five-step runs/s on PostgreSQL.
Not run by ``make test``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from toolbridge import Hub
from toolbridge.pipelines import Pipeline, add_pipelines, pipeline_service
from toolbridge.pipelines._store import ACTIVE
from toolbridge.pipelines._tables import pipeline_runs, pipeline_steps
from toolbridge.policy import Principal

POSTGRES = os.environ.get("TOOLBRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ME = Principal.local("bench")
STEPS = 5
TOOLS = """
async def noop(n: int = 0) -> dict:
    return {"n": n + 1}
"""
CONFIG = """
server: {{database: "{database}", database_pool: 40}}
connectors:
  bench:
    kind: python
    tools:
      - {{function: bench_pipeline_tools:noop, idempotent: true}}
pipeline_worker: {{lease: 30, concurrency: 32, poll_interval: 0.02}}
pipelines:
  five:
    steps:
{steps}
"""


def five_steps() -> list[dict[str, object]]:
    steps: list[dict[str, object]] = [{"name": "s0", "tool": "bench.noop", "arguments": {"n": 0}}]
    for i in range(1, STEPS):
        steps.append({"name": f"s{i}", "tool": "bench.noop", "arguments": {"n": f"${{steps.s{i - 1}.n}}"}})
    return steps


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def overhead(runs: int, folder: Path) -> dict[str, float]:
    hub = Hub(database=f"sqlite+aiosqlite:///{folder / 'overhead.db'}")

    @hub.tool(connector="bench", idempotent=True)
    async def noop(n: int = 0) -> dict[str, int]:
        return {"n": n + 1}

    add_pipelines(hub, [Pipeline.build("five", five_steps())])
    pipeline_ms, keyed_ms, plain_ms, pipeline_cpu, keyed_cpu = [], [], [], [], []
    async with hub:
        service = pipeline_service(hub)
        assert service is not None
        for i in range(runs + 20):  # the first 20 warm up
            started, cpu = time.perf_counter(), time.process_time()
            for s in range(STEPS):
                await hub.call(ME, "bench.noop", {"n": s}, idempotency_key=f"direct-{i}-{s}")
            keyed, keyed_cpu_s = time.perf_counter() - started, time.process_time() - cpu
            started = time.perf_counter()
            for s in range(STEPS):
                await hub.call(ME, "bench.noop", {"n": s})
            plain = time.perf_counter() - started
            started, cpu = time.perf_counter(), time.process_time()
            result = await hub.call(ME, "pipelines.five", {})
            whole, whole_cpu = time.perf_counter() - started, time.process_time() - cpu
            assert result.value["state"] == "succeeded", result.value
            if i >= 20:
                pipeline_ms.append(whole * 1000)
                keyed_ms.append(keyed * 1000)
                plain_ms.append(plain * 1000)
                pipeline_cpu.append(whole_cpu * 1000)
                keyed_cpu.append(keyed_cpu_s * 1000)
    per_step = [(p - k) / STEPS for p, k in zip(pipeline_ms, keyed_ms, strict=True)]
    per_step_plain = [(p - k) / STEPS for p, k in zip(pipeline_ms, plain_ms, strict=True)]
    median, p99 = quantiles(per_step)
    median_plain, p99_plain = quantiles(per_step_plain)
    median_cpu, p99_cpu = quantiles([(p - k) / STEPS for p, k in zip(pipeline_cpu, keyed_cpu, strict=True)])
    return {
        "run_median_ms": statistics.median(pipeline_ms),
        "direct_keyed_median_ms": statistics.median(keyed_ms),
        "direct_plain_median_ms": statistics.median(plain_ms),
        "overhead_per_step_median_ms": median,
        "overhead_per_step_p99_ms": p99,
        "overhead_vs_plain_median_ms": median_plain,
        "overhead_vs_plain_p99_ms": p99_plain,
        "run_cpu_median_ms": statistics.median(pipeline_cpu),
        "direct_keyed_cpu_median_ms": statistics.median(keyed_cpu),
        "overhead_cpu_per_step_median_ms": median_cpu,
        "overhead_cpu_per_step_p99_ms": p99_cpu,
    }


async def fresh_postgres() -> str:
    import asyncpg

    name = f"tb_bench_{os.getpid()}_{int(time.time())}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"


async def all_ended(database: str, ids: list[str]) -> tuple[list[sa.RowMapping], Any]:
    """The runs once none is active, and when the first step started: one count every 50 ms on one
    connection (not a hub, nor a query per run: the driver must not take the workers' CPU)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database, poolclass=NullPool)
    active = sa.select(sa.func.count()).where(pipeline_runs.c.state.in_(tuple(ACTIVE)))
    try:
        async with engine.connect() as conn:
            with anyio.fail_after(600):
                while (await conn.execute(active)).scalar_one():
                    await conn.rollback()  # a fresh snapshot next time
                    await anyio.sleep(0.05)
            query = sa.select(pipeline_runs.c.state, pipeline_runs.c.updated_at)
            ended = list((await conn.execute(query.where(pipeline_runs.c.id.in_(ids)))).mappings())
            first = sa.select(sa.func.min(pipeline_steps.c.started_at))
            return ended, (await conn.execute(first)).scalar_one()
    finally:
        await engine.dispose()


async def throughput(queued: int, folder: Path) -> dict[str, float]:
    database = await fresh_postgres()
    steps = "\n".join(
        "      - {"
        + ", ".join(f"{k}: {v!r}" if k != "arguments" else f"arguments: {v}" for k, v in s.items())
        + "}"
        for s in five_steps()
    ).replace("'", '"')
    (folder / "bench_pipeline_tools.py").write_text(TOOLS)
    config = folder / "toolbridge.yaml"
    config.write_text(CONFIG.format(database=database, steps=steps))
    sys.path.insert(0, str(folder))
    async with Hub.from_file(config) as hub:
        service = pipeline_service(hub)
        assert service is not None
        service.inline = False
        runs = [await service.start("five", ME, {}, request_id=f"bench-{i}") for i in range(queued)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    workers = [
        await anyio.open_process(
            [sys.executable, "-m", "toolbridge", "worker", "-c", str(config)],
            env=env,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    try:
        ended, first_step = await all_ended(database, [r.id for r in runs])
        elapsed, driver_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        for worker in workers:
            worker.terminate()
            with anyio.fail_after(30):
                await worker.wait()
    bad = [dict(r) for r in ended if r["state"] != "succeeded"]
    assert not bad, bad[:3]
    ends = sorted(r["updated_at"] for r in ended)  # each run's end, as its worker stored it
    steady = (ends[-1] - ends[0]).total_seconds()
    working = (ends[-1] - first_step).total_seconds()
    return {
        "runs": float(queued),
        "seconds": elapsed,
        "runs_per_s": queued / elapsed,
        "working_s": working,
        "working_runs_per_s": queued / working,
        "start_up_s": elapsed - working,
        "steady_runs_per_s": (queued - 1) / steady if steady > 0 else float("nan"),
        "driver_cpu_s": driver_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tb-bench-pipelines-") as scratch:
        folder = Path(scratch)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (busy: numbers mean little)")
        found = anyio.run(overhead, args.runs, folder)
        print(f"SQLite, {args.runs} runs of a {STEPS}-step no-op pipeline (in-process, durable state):")
        print(f"  pipeline run           median {found['run_median_ms']:.2f} ms")
        print(f"  5 direct keyed calls   median {found['direct_keyed_median_ms']:.2f} ms (baseline)")
        print(f"  5 direct plain calls   median {found['direct_plain_median_ms']:.2f} ms")
        median, p99 = found["overhead_per_step_median_ms"], found["overhead_per_step_p99_ms"]
        print(f"  engine overhead / step median {median:.2f} ms, p99 {p99:.2f} ms (vs keyed calls)")
        print(
            f"  vs plain calls         median {found['overhead_vs_plain_median_ms']:.2f} ms, "
            f"p99 {found['overhead_vs_plain_p99_ms']:.2f} ms"
        )
        print(
            f"  CPU: run {found['run_cpu_median_ms']:.2f} ms, 5 keyed calls "
            f"{found['direct_keyed_cpu_median_ms']:.2f} ms; overhead / step median "
            f"{found['overhead_cpu_per_step_median_ms']:.2f} ms, "
            f"p99 {found['overhead_cpu_per_step_p99_ms']:.2f} ms"
        )
        print(f"  goal ≤ 2 ms/step: {'met' if median <= 2.0 else 'NOT met'} (wall-time median)")
        if not args.skip_postgres:
            result = anyio.run(throughput, args.queued, folder)
            print(f"PostgreSQL, 2 workers, {args.queued} queued {STEPS}-step no-op runs:")
            print(
                f"  {result['working_runs_per_s']:.0f} runs/s from the first step's start to the last "
                f"run's end ({result['working_s']:.1f} s)"
            )
            print(
                f"  {result['runs_per_s']:.0f} runs/s from the workers' start ({result['seconds']:.1f} s: "
                f"their start-up, {result['start_up_s']:.1f} s, included)"
            )
            print(f"  {result['steady_runs_per_s']:.0f} runs/s from the first run's end to the last's")
            print(f"  the driver's CPU while it waited: {result['driver_cpu_s']:.2f} s")
            met = result["working_runs_per_s"] >= 100
            print(f"  goal ≥ 100 runs/s (first step to last end): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
