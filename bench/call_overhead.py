"""Call overhead of toolbridge against a bare floor and FastMCP, for one no-op tool.

Every server runs in its own process under uvicorn on 127.0.0.1 with the same settings
(bench/_uvicorn.py), one server per target, all started up front; the load comes from this process.

* sequential: after ``--warmup`` unmeasured calls, ``--calls`` calls one after another on one keep-alive
  connection → median and p99 latency and the server's CPU time per call. The calls are made in
  ``--rounds`` rounds that visit every target in turn, so that a burst of load from elsewhere on the
  machine falls on all targets alike rather than on whichever ran at that moment;
* concurrent: ``--clients`` clients, each on its own connection, ``--calls-each`` calls each (split over
  the concurrent rounds) → throughput and median/p99 latency under load.

Usage: ``uv run python bench/call_overhead.py [--quick] [--only TARGET[,TARGET]] [--client raw]``.
Results are printed as a table and written to bench/results/call_overhead.json.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from _load import (
    Call,
    HandshakeMcpTarget,
    InProcessTarget,
    Latency,
    ModernMcpTarget,
    RestTarget,
    Run,
    SdkMcpTarget,
    ServerCpu,
    Target,
    concurrent,
    sequential,
)
from _procs import BENCH, Server, fastmcp_python, free_port, running
from _profile import record, summarize
from _report import LABELS, TARGETS, Outcome, Plan, table, write_json

RESULTS = BENCH / "results" / "call_overhead.json"
TOOL = "bench.noop"
STEP_TIMEOUT = 120.0
"""Seconds one step (a warm-up, a round of one target) may take before that target is failed."""


@dataclass
class Entry:
    """One target under test: its server (None in-process), its load target, and what it measured."""

    outcome: Outcome
    server: Server | None = None
    target: Target | None = None
    call: Call | None = None  # the sequential client, open for the whole run
    sequential: list[Run] = field(default_factory=list)
    concurrent: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.outcome.name

    @property
    def live(self) -> bool:
        return self.outcome.error is None

    @property
    def server_cpu(self) -> ServerCpu:
        return None if self.server is None else self.server.cpu_seconds

    def fail(self, exc: BaseException) -> None:
        self.outcome.error = f"{type(exc).__name__}: {exc}"
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exception(exc)


# -- servers -------------------------------------------------------------------------------------------


@contextmanager
def serving(name: str, plan: Plan, logs: Path) -> Iterator[tuple[Server, str | None]]:
    """The server behind target ``name``, and the toolbridge agent key (None for the baselines)."""
    port = free_port()
    if name == "floor":
        with running(name, [sys.executable, str(BENCH / "serve_floor.py"), str(port)], port, logs) as server:
            yield server, None
        return
    if name.startswith("fastmcp"):
        argv = [str(fastmcp_python()), str(BENCH / "serve_fastmcp.py"), str(port)]
        with running(name, argv, port, logs) as server:
            yield server, None
        return
    key_file = logs / f"{name}.key"
    argv = [sys.executable, str(BENCH / "serve_toolbridge.py"), str(port), str(key_file)]
    if plan.database:
        argv.append(plan.database)
    with running(name, argv, port, logs, wait_for=key_file) as server:
        yield server, key_file.read_text().strip()


def http_target(name: str, base_url: str, key: str | None, plan: Plan) -> Target:
    url, connect = f"{base_url}/mcp", plan.connect
    if name in ("floor", "mcp"):
        return ModernMcpTarget(name, url, key, TOOL, connect)
    if name == "fastmcp":
        return ModernMcpTarget(name, url, None, "noop", connect)
    if name == "fastmcp-handshake":
        return HandshakeMcpTarget(name, url, None, "noop", connect)
    if name == "mcp-handshake":
        return HandshakeMcpTarget(name, url, key, TOOL, connect)
    if name == "rest":
        assert key is not None
        return RestTarget(name, base_url, key, TOOL, connect)
    assert key is not None and name in ("sdk", "sdk-handshake")
    return SdkMcpTarget(name, url, key, TOOL, mode="2026-07-28" if name == "sdk" else "legacy")


def start_servers(entries: list[Entry], plan: Plan, logs: Path, stack: ExitStack) -> None:
    for entry in entries:
        if entry.name == "inprocess":
            continue
        print(f"  starting {entry.name}", file=sys.stderr, flush=True)
        try:
            server, key = stack.enter_context(serving(entry.name, plan, logs))
        except Exception as exc:  # noqa: BLE001 - one server that does not start must not lose the others
            entry.fail(exc)
            continue
        entry.server = server
        entry.target = http_target(entry.name, server.base_url, key, plan)


@contextmanager
def profiling(entry: Entry, plan: Plan) -> Iterator[None]:
    """With ``--profile DIR``, py-spy samples ``entry``'s server while the block runs.

    Each block's stacks are appended to DIR/<target>.txt (collapsed stacks add up) and the summary of
    all of them so far is rewritten to DIR/<target>.summary.txt.
    """
    if plan.profile is None or entry.server is None:
        yield
        return
    plan.profile.mkdir(parents=True, exist_ok=True)
    part, stacks = plan.profile / f"{entry.name}.part.txt", plan.profile / f"{entry.name}.txt"
    with record(entry.server.pid, part):
        yield
    with stacks.open("a") as out:
        out.write(part.read_text())
    part.unlink()
    (plan.profile / f"{entry.name}.summary.txt").write_text(summarize(stacks, top=25) + "\n")


# -- load ----------------------------------------------------------------------------------------------


async def step(entry: Entry, make: Callable[[], Awaitable[None]], *, scoped: bool = True) -> None:
    """Run one step for ``entry`` under STEP_TIMEOUT; a failure fails that target only.

    A step that enters a context kept open after it (a client, the hub) cannot run inside a cancel scope
    it outlives: ``scoped=False`` leaves the bound to the per-request timeouts of the clients.
    """
    if not entry.live:
        return
    try:
        if scoped:
            with anyio.fail_after(STEP_TIMEOUT):
                await make()
        else:
            await make()
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' numbers
        entry.fail(exc)


async def measure_all(entries: list[Entry], plan: Plan) -> None:
    async with AsyncExitStack() as stack:
        for entry in entries:
            if entry.name == "inprocess":
                await step(entry, functools.partial(_enter_hub, entry, plan, stack), scoped=False)

        for entry in entries:
            await step(entry, functools.partial(_open_client, entry, plan, stack), scoped=False)
        per_round = max(1, plan.calls // plan.rounds)
        for _ in range(plan.rounds):
            for entry in entries:
                await step(entry, functools.partial(_sequential_round, entry, per_round))
        if plan.profile is not None:
            for entry in entries:
                (plan.profile / f"{entry.name}.txt").unlink(missing_ok=True)
        each = max(1, plan.calls_each // plan.concurrent_rounds)
        for _ in range(plan.concurrent_rounds):
            for entry in entries:
                await step(entry, functools.partial(_concurrent_round, entry, plan, each))


async def _enter_hub(entry: Entry, plan: Plan, stack: AsyncExitStack) -> None:
    from serve_toolbridge import build_hub
    from toolbridge import Principal

    hub = await stack.enter_async_context(build_hub(plan.database))
    principal = Principal.local()

    async def call() -> None:
        await hub.call(principal, TOOL, {})

    entry.target = InProcessTarget("inprocess", call)


async def _open_client(entry: Entry, plan: Plan, stack: AsyncExitStack) -> None:
    assert entry.target is not None
    entry.call = await stack.enter_async_context(entry.target.client())
    for _ in range(plan.warmup):
        await entry.call()


async def _sequential_round(entry: Entry, calls: int) -> None:
    assert entry.call is not None
    entry.sequential.append(await sequential(entry.call, calls=calls, server_cpu=entry.server_cpu))


async def _concurrent_round(entry: Entry, plan: Plan, calls_each: int) -> None:
    assert entry.target is not None
    with profiling(entry, plan):
        run = await concurrent(
            entry.target,
            clients=plan.clients,
            calls_each=calls_each,
            warmup=plan.warmup_each,
            server_cpu=entry.server_cpu,
        )
    entry.concurrent.append(run)


# -- command line --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[list[str], Plan, Path]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run of every target")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TARGET",
        help=f"run only these targets (repeat or comma-separate): {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--calls", type=int, help="sequential calls per target (default 1000; 200 with --quick)"
    )
    parser.add_argument(
        "--rounds", type=int, help="sequential rounds across the targets (default 5; 2 with --quick)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument(
        "--calls-each",
        type=int,
        help="calls per concurrent client (default 200 in 2 rounds; 25 in 1 with --quick)",
    )
    parser.add_argument(
        "--client",
        choices=("httpx2", "raw"),
        default="httpx2",
        help="HTTP client for the load: httpx2 (default) or a minimal raw asyncio HTTP/1.1 client",
    )
    parser.add_argument("--database", help="toolbridge database URL (default: in-memory SQLite)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample every server with py-spy during the concurrent load; stacks and summaries to DIR",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    chosen = [t.strip() for spec in args.only for t in spec.split(",") if t.strip()] or list(TARGETS)
    unknown = sorted(set(chosen) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    plan = Plan(
        calls=args.calls or (200 if args.quick else 1000),
        warmup=20 if args.quick else 100,
        clients=args.clients,
        calls_each=args.calls_each or (25 if args.quick else 200),
        warmup_each=2 if args.quick else 5,
        rounds=args.rounds or (2 if args.quick else 5),
        concurrent_rounds=1 if args.quick else 2,
        database=args.database,
        client=args.client,
        profile=args.profile,
    )
    return [t for t in TARGETS if t in chosen], plan, args.output


def main(argv: list[str] | None = None) -> int:
    names, plan, output = parse_args(argv)
    print(f"call_overhead: {', '.join(names)}", file=sys.stderr, flush=True)
    entries = [Entry(Outcome(name, LABELS[name])) for name in names]
    with tempfile.TemporaryDirectory(prefix="toolbridge-bench-") as tmp, ExitStack() as servers:
        start_servers(entries, plan, Path(tmp), servers)
        print("  measuring", file=sys.stderr, flush=True)
        anyio.run(measure_all, entries, plan)
    for entry in entries:
        if entry.live and entry.sequential and entry.concurrent:
            entry.outcome.sequential = Latency.of(entry.sequential)
            entry.outcome.concurrent = Latency.of(entry.concurrent)
    results = {entry.name: entry.outcome for entry in entries}
    print(table(results, plan))
    write_json(results, plan, output)
    print(f"\nwrote {output}")
    return 1 if any(o.error for o in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
