"""Call overhead of toolbridge against a bare floor and FastMCP, for one no-op tool.

Every server runs in its own process under uvicorn on 127.0.0.1 with the same settings
(bench/servers/_uvicorn.py); the load comes from this process. For each target:

* sequential: ``--warmup`` unmeasured calls, then ``--calls`` calls one after another on one keep-alive
  connection → median and p99 latency, and the server's CPU time per call;
* concurrent: ``--clients`` clients, each on its own connection, ``--calls-each`` calls each → throughput
  and median/p99 latency under load.

Usage: ``uv run python bench/call_overhead.py [--quick] [--only TARGET[,TARGET]]``. Results are printed
as a table and written to bench/results/call_overhead.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from _load import (
    Connect,
    HandshakeMcpTarget,
    InProcessTarget,
    Latency,
    ModernMcpTarget,
    RestTarget,
    SdkMcpTarget,
    Target,
    concurrent,
    connector,
    sequential,
)
from _procs import BENCH, SERVERS, Server, fastmcp_python, free_port, running
from _profile import record, summarize
from servers._uvicorn import SETTINGS as UVICORN_SETTINGS

RESULTS = BENCH / "results" / "call_overhead.json"
TOOL = "bench.noop"
TARGET_TIMEOUT = 120.0

LABELS = {
    "floor": "floor: bare Starlette, fixed JSON-RPC reply",
    "inprocess": "toolbridge hub.call, in-process (no HTTP)",
    "rest": "toolbridge REST POST /v1/tools/bench.noop/call",
    "mcp": "toolbridge MCP tools/call, 2026-07-28 (stateless)",
    "mcp-handshake": "toolbridge MCP tools/call, 2025-11-25 (session)",
    "fastmcp": "FastMCP 4.1.6 noop, 2026-07-28 (stateless JSON)",
    "fastmcp-handshake": "FastMCP 4.1.6 noop, 2025-11-25 (stateless JSON)",
    "sdk": "toolbridge MCP via mcp 2.3.0 Client, 2026-07-28 *",
    "sdk-handshake": "toolbridge MCP via mcp 2.3.0 Client, 2025-11-25 *",
}
TARGETS = tuple(LABELS)


@dataclass
class Outcome:
    name: str
    label: str
    sequential: Latency | None = None
    concurrent: Latency | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    calls: int
    warmup: int
    clients: int
    calls_each: int
    warmup_each: int
    database: str | None
    client: str
    profile: Path | None

    @property
    def connect(self) -> Connect:
        return connector(self.client)


# -- running one target --------------------------------------------------------------------------------


def measure(target: Target, plan: Plan, server: Server, outcome: Outcome) -> None:
    """Run both load shapes against ``target`` served by ``server``; with ``--profile``, sample the second."""
    cpu = server.cpu_seconds
    outcome.sequential = _run(sequential(target, calls=plan.calls, warmup=plan.warmup, server_cpu=cpu))
    with contextlib.ExitStack() as stack:
        if plan.profile is not None:
            plan.profile.mkdir(parents=True, exist_ok=True)
            stack.enter_context(record(server.pid, plan.profile / f"{outcome.name}.txt"))
        outcome.concurrent = _run(
            concurrent(
                target,
                clients=plan.clients,
                calls_each=plan.calls_each,
                warmup=plan.warmup_each,
                server_cpu=cpu,
            )
        )
    if plan.profile is not None:
        report = summarize(plan.profile / f"{outcome.name}.txt", top=25)
        (plan.profile / f"{outcome.name}.summary.txt").write_text(report + "\n")


def _run(coro: Awaitable[Latency]) -> Latency:
    async def bounded() -> Latency:
        with anyio.fail_after(TARGET_TIMEOUT):
            return await coro

    return anyio.run(bounded)


@contextmanager
def toolbridge_server(name: str, plan: Plan, logs: Path) -> Iterator[tuple[Server, str]]:
    port, key_file = free_port(), logs / f"{name}.key"
    argv = [sys.executable, str(SERVERS / "toolbridge_noop.py"), str(port), str(key_file)]
    if plan.database:
        argv.append(plan.database)
    with running(name, argv, port, logs, wait_for=key_file) as server:
        yield server, key_file.read_text().strip()


def run_http(name: str, plan: Plan, logs: Path, outcome: Outcome) -> None:
    if name == "floor":
        port = free_port()
        with running(name, [sys.executable, str(SERVERS / "floor.py"), str(port)], port, logs) as server:
            target = ModernMcpTarget(name, f"{server.base_url}/mcp", None, TOOL, plan.connect)
            measure(target, plan, server, outcome)
        return
    if name.startswith("fastmcp"):
        port = free_port()
        argv = [str(fastmcp_python()), str(SERVERS / "fastmcp_noop.py"), str(port)]
        with running(name, argv, port, logs) as server:
            url = f"{server.base_url}/mcp"
            kind = ModernMcpTarget if name == "fastmcp" else HandshakeMcpTarget
            measure(kind(name, url, None, "noop", plan.connect), plan, server, outcome)
        return
    with toolbridge_server(name, plan, logs) as (server, key):
        url = f"{server.base_url}/mcp"
        target: Target
        if name == "rest":
            target = RestTarget(name, server.base_url, key, TOOL, plan.connect)
        elif name == "mcp":
            target = ModernMcpTarget(name, url, key, TOOL, plan.connect)
        elif name == "mcp-handshake":
            target = HandshakeMcpTarget(name, url, key, TOOL, plan.connect)
        else:
            target = SdkMcpTarget(name, url, key, TOOL, mode="2026-07-28" if name == "sdk" else "legacy")
            outcome.notes.append("includes the mcp client's own cost")
        measure(target, plan, server, outcome)


def run_inprocess(plan: Plan, outcome: Outcome) -> None:
    sys.path.insert(0, str(SERVERS))
    from toolbridge_noop import build_hub

    from toolbridge import Principal

    hub = build_hub(plan.database)
    principal = Principal.local()

    async def call() -> None:
        await hub.call(principal, TOOL, {})

    target = InProcessTarget("inprocess", call)

    async def both() -> None:
        async with hub:
            with anyio.fail_after(TARGET_TIMEOUT):
                outcome.sequential = await sequential(
                    target, calls=plan.calls, warmup=plan.warmup, server_cpu=None
                )
            with anyio.fail_after(TARGET_TIMEOUT):
                outcome.concurrent = await concurrent(
                    target,
                    clients=plan.clients,
                    calls_each=plan.calls_each,
                    warmup=plan.warmup_each,
                    server_cpu=None,
                )

    anyio.run(both)


def run_target(name: str, plan: Plan, logs: Path) -> Outcome:
    outcome = Outcome(name, LABELS[name])
    print(f"  {name:<18} ...", end="", file=sys.stderr, flush=True)
    began = time.perf_counter()
    try:
        if name == "inprocess":
            run_inprocess(plan, outcome)
        else:
            run_http(name, plan, logs, outcome)
    except Exception as exc:  # noqa: BLE001 - one failed target must not lose the others' numbers
        outcome.error = f"{type(exc).__name__}: {exc}"
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
    status = "failed" if outcome.error else "done"
    print(f" {status} in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return outcome


# -- report --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(results: dict[str, Outcome]) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, value, goal, met) for each headline figure."""

    def seq(name: str) -> float | None:
        o = results.get(name)
        return o.sequential.median_ms if o and o.sequential else None

    def tput(name: str) -> float | None:
        o = results.get(name)
        return o.concurrent.throughput if o and o.concurrent else None

    rows: list[tuple[str, float | None, str, bool | None]] = []

    def add(what: str, value: float | None, goal: str, ok: Callable[[float], bool | None]) -> None:
        rows.append((what, value, goal, ok(value) if value is not None else None))

    add("toolbridge MCP median (ms)", seq("mcp"), "<= 0.9 ms", lambda v: v <= 0.9)
    add(
        "toolbridge MCP median / floor median",
        _ratio(seq("mcp"), seq("floor")),
        "<= 1.5x",
        lambda v: v <= 1.5,
    )
    add(
        "toolbridge MCP 2025-11-25 median / floor",
        _ratio(seq("mcp-handshake"), seq("floor")),
        "<= 1.5x",
        lambda v: v <= 1.5,
    )
    add("toolbridge REST median (ms)", seq("rest"), "<= 0.8 ms", lambda v: v <= 0.8)
    add("toolbridge REST median / floor median", _ratio(seq("rest"), seq("floor")), "(info)", lambda v: None)
    add(
        "toolbridge MCP 32-client tput / FastMCP",
        _ratio(tput("mcp"), tput("fastmcp")),
        ">= 2x",
        lambda v: v >= 2,
    )
    add(
        "toolbridge REST 32-client tput / FastMCP",
        _ratio(tput("rest"), tput("fastmcp")),
        ">= 2x",
        lambda v: v >= 2,
    )
    add(
        "toolbridge MCP 2025-11-25 tput / FastMCP 2025-11-25",
        _ratio(tput("mcp-handshake"), tput("fastmcp-handshake")),
        ">= 2x",
        lambda v: v >= 2,
    )
    return rows


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: dict[str, Outcome], plan: Plan) -> str:
    sub = f"{plan.clients} cl."
    lines = [
        f"client: {plan.client};  sequential: {plan.calls} calls after {plan.warmup} warm-up on one "
        f"keep-alive connection;  concurrent: {plan.clients} clients x {plan.calls_each} calls, "
        "one connection each",
        "",
        f"{'':<52} {'---- sequential ----':>24} {'------------------ concurrent ------------------':>50}",
        f"{'target':<52} {'median':>7} {'p99':>7} {'srv CPU':>8} {'calls/s':>8} {'median':>7} {'p99':>7} "
        f"{'server':>6} {'client':>6} {'others':>6}",
        f"{'':<52} {'ms':>7} {'ms':>7} {'us/call':>8} {sub:>8} {'ms':>7} {'ms':>7} "
        f"{'CPU':>6} {'CPU':>6} {'CPU':>6}",
        "-" * 127,
    ]
    for o in results.values():
        if o.error:
            lines.append(f"{o.label:<52} FAILED: {o.error[:200]}")
            continue
        s, c = o.sequential, o.concurrent
        client = "-" if o.name == "inprocess" else _f(c and c.client_share, "6.0%")
        lines.append(
            f"{o.label:<52} {_f(s and s.median_ms, '7.3f')} {_f(s and s.p99_ms, '7.3f')} "
            f"{_f(s and s.server_cpu_us_per_call, '8.0f')} {_f(c and c.throughput, '8.0f')} "
            f"{_f(c and c.median_ms, '7.2f')} {_f(c and c.p99_ms, '7.2f')} "
            f"{_f(c and c.server_share, '6.0%')} {client:>6} {_f(c and c.other_share, '6.0%')}"
        )
    lines += [
        "srv CPU us/call: the server process's CPU time per call.  CPU columns: CPU time / wall time while "
        "the load ran,",
        "for the server, this load-generating client, and every other process on the machine "
        "(2 cores = 200%).",
        "A client near 100% limited that throughput itself; 'others' above a few % means a busy machine.",
    ]
    if any(name.startswith("sdk") for name in results):
        lines.append("* measured through the official mcp client: includes that client's own cost")
    lines += ["", f"{'headline':<52} {'value':>8}  {'goal':<10} met"]
    for what, value, goal, met in ratios(results):
        shown = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"{what:<52} {_f(value, '8.2f')}  {goal:<10} {shown}")
    return "\n".join(lines)


def write_json(results: dict[str, Outcome], plan: Plan, path: Path) -> None:
    def latency(value: Latency | None) -> dict[str, float] | None:
        return None if value is None else {**asdict(value), "throughput": value.throughput}

    doc: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "plan": asdict(plan),
        "uvicorn": UVICORN_SETTINGS,
        "targets": {
            name: {**asdict(o), "sequential": latency(o.sequential), "concurrent": latency(o.concurrent)}
            for name, o in results.items()
        },
        "headline": [{"what": w, "value": v, "goal": g, "met": m} for w, v, g, m in ratios(results)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


# -- command line --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[list[str], Plan, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run of every target")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TARGET",
        help=f"run only these targets (repeat or comma-separate): {', '.join(TARGETS)}",
    )
    parser.add_argument("--calls", type=int, help="sequential calls (default 1000; 200 with --quick)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument(
        "--calls-each", type=int, help="calls per concurrent client (default 200; 25 with --quick)"
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
        help="sample each server with py-spy during the concurrent load; stacks and summaries to DIR",
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
        database=args.database,
        client=args.client,
        profile=args.profile,
    )
    return [t for t in TARGETS if t in chosen], plan, args.output


def main(argv: list[str] | None = None) -> int:
    names, plan, output = parse_args(argv)
    print(f"call_overhead: {len(names)} target(s)", file=sys.stderr)
    results: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="toolbridge-bench-") as tmp:
        for name in names:
            results[name] = run_target(name, plan, Path(tmp))
    print(table(results, plan))
    write_json(results, plan, output)
    print(f"\nwrote {output}")
    return 1 if any(o.error for o in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
