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
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path

import anyio

from _load import (
    Entry,
    HandshakeMcpTarget,
    InProcessTarget,
    Latency,
    ModernMcpTarget,
    RestTarget,
    SdkMcpTarget,
    Target,
    measure_all,
)
from _procs import BENCH, Server, fastmcp_python, free_port, running
from _report import (
    LABELS,
    TARGETS,
    Outcome,
    Plan,
    add_common_arguments,
    chosen_targets,
    finish,
    headlines,
    load_counts,
    table,
)

RESULTS = BENCH / "results" / "call_overhead.json"
TOOL = "bench.noop"


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


# -- load ----------------------------------------------------------------------------------------------


async def _enter_hub(database: str | None, entry: Entry, stack: AsyncExitStack) -> None:
    from serve_toolbridge import build_hub
    from toolbridge import Principal

    hub = await stack.enter_async_context(build_hub(database))
    principal = Principal.local()

    async def call() -> None:
        await hub.call(principal, TOOL, {})

    entry.target = InProcessTarget("inprocess", call)


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
    add_common_arguments(
        parser,
        profile_help="sample every server with py-spy during the concurrent load; "
        "stacks and summaries to DIR",
        results=RESULTS,
    )
    args = parser.parse_args(argv)
    names = chosen_targets(parser, args.only, TARGETS)
    plan = Plan(**load_counts(args), database=args.database, client=args.client, profile=args.profile)
    return names, plan, args.output


def outcome(entry: Entry) -> Outcome:
    result = Outcome(entry.name, LABELS[entry.name], error=entry.error)
    if entry.live and entry.sequential and entry.concurrent:
        result.sequential = Latency.of(entry.sequential)
        result.concurrent = Latency.of(entry.concurrent)
    return result


def main(argv: list[str] | None = None) -> int:
    names, plan, output = parse_args(argv)
    print(f"call_overhead: {', '.join(names)}", file=sys.stderr, flush=True)
    entries = [Entry(name) for name in names]
    with tempfile.TemporaryDirectory(prefix="toolbridge-bench-") as tmp, ExitStack() as servers:
        start_servers(entries, plan, Path(tmp), servers)
        print("  measuring", file=sys.stderr, flush=True)
        anyio.run(measure_all, entries, plan, functools.partial(_enter_hub, plan.database))
    results = {entry.name: outcome(entry) for entry in entries}
    return finish(output, plan, results, table(results, plan), headlines(results))


if __name__ == "__main__":
    sys.exit(main())
