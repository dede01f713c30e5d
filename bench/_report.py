"""What a benchmark run found: the per-target outcome, the headline ratios against their goals, the table
and the JSON document."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from _load import Connect, Latency, connector
from _uvicorn import SETTINGS as UVICORN_SETTINGS
from _uvicorn import stack

CLIENT_BOUND = 0.85
"""A load-generating client using this share of a core is the bottleneck, not the server."""

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


@dataclass(frozen=True)
class Plan:
    calls: int
    warmup: int
    clients: int
    calls_each: int
    warmup_each: int
    rounds: int
    concurrent_rounds: int
    database: str | None
    client: str
    profile: Path | None

    @property
    def connect(self) -> Connect:
        return connector(self.client)


@dataclass
class Outcome:
    name: str
    label: str
    sequential: Latency | None = None
    concurrent: Latency | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


Headline = tuple[str, float | None, str, bool | None]


def headlines(results: dict[str, Outcome]) -> list[Headline]:
    """(what, value, goal, met) for each headline figure; None where a target was not run."""

    def median(name: str) -> float | None:
        o = results.get(name)
        return o.sequential.median_ms if o and o.sequential else None

    def tput(name: str) -> float | None:
        o = results.get(name)
        return o.concurrent.throughput if o and o.concurrent else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    rows: list[Headline] = []

    def add(what: str, value: float | None, goal: str, ok: Callable[[float], bool | None]) -> None:
        rows.append((what, value, goal, ok(value) if value is not None else None))

    add("toolbridge MCP median (ms)", median("mcp"), "<= 0.9 ms", lambda v: v <= 0.9)
    add(
        "toolbridge MCP median / floor median",
        ratio(median("mcp"), median("floor")),
        "<= 1.5x",
        lambda v: v <= 1.5,
    )
    add(
        "toolbridge MCP 2025-11-25 median / floor",
        ratio(median("mcp-handshake"), median("floor")),
        "<= 1.5x",
        lambda v: v <= 1.5,
    )
    add("toolbridge REST median (ms)", median("rest"), "<= 0.8 ms", lambda v: v <= 0.8)
    add(
        "toolbridge REST median / floor median",
        ratio(median("rest"), median("floor")),
        "(info)",
        lambda v: None,
    )
    add(
        "toolbridge MCP 32-client tput / FastMCP",
        ratio(tput("mcp"), tput("fastmcp")),
        ">= 2x",
        lambda v: v >= 2,
    )
    add(
        "toolbridge REST 32-client tput / FastMCP",
        ratio(tput("rest"), tput("fastmcp")),
        ">= 2x",
        lambda v: v >= 2,
    )
    add(
        "toolbridge MCP 2025-11-25 tput / FastMCP 2025-11-25",
        ratio(tput("mcp-handshake"), tput("fastmcp-handshake")),
        ">= 2x",
        lambda v: v >= 2,
    )
    return rows


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class Measured(Protocol):
    """A target's outcome as the table shows it (each script's ``Outcome`` has at least these)."""

    name: str
    label: str
    sequential: Latency | None
    concurrent: Latency | None
    error: str | None


def row(o: Measured, width: int, *, upstream: bool = False, upstream_share: float | None = None) -> str:
    """One target's table row; ``upstream`` adds a column for the CPU share of a REST upstream behind the
    server, which is then not counted among the others."""
    s, c = o.sequential, o.concurrent
    if o.error or s is None or c is None:
        return f"{o.label:<{width}} FAILED: {(o.error or 'no result')[:200]}"
    inproc = o.name == "inprocess"
    client = "-" if inproc else format(c.client_share, "6.0%")
    bound = "!" if not inproc and c.client_share >= CLIENT_BOUND else " "
    cells = [format(c.server_share, "6.0%")]
    if upstream:
        cells.append(format("-" if upstream_share is None else format(upstream_share, "6.0%"), ">6"))
    cells += [format(client, ">6"), format(max(0.0, c.other_share - (upstream_share or 0.0)), "6.0%")]
    return (
        f"{o.label:<{width}} {s.median_ms:7.3f} {s.p99_ms:7.3f} {s.server_cpu_us_per_call:8.0f} "
        f"{c.throughput:7.0f}{bound} {c.median_ms:7.2f} {c.p99_ms:7.2f} {' '.join(cells)}"
    )


def plan_lines(plan: Any) -> list[str]:
    """The table's first lines: how the load was made."""
    return [
        f"client: {plan.client};  sequential: {plan.calls} calls (after {plan.warmup} warm-up) on one "
        f"keep-alive connection, in {plan.rounds} rounds interleaved across targets;",
        f"concurrent: {plan.clients} clients x {plan.calls_each} calls, one connection each, "
        f"in {plan.concurrent_rounds} round(s)",
    ]


def headline_lines(rows: list[Headline], width: int, *, pad_missing: bool = False) -> list[str]:
    """The headline block under the table; ``pad_missing`` right-aligns a missing value's "-"."""
    lines = [f"{'headline':<{width}} {'value':>8}  {'goal':<10} met"]
    for what, value, goal, met in rows:
        shown = "-" if met is None else ("yes" if met else "NO")
        cell = _f(value, "8.2f")
        if pad_missing:
            cell = format(cell, ">8")
        lines.append(f"{what:<{width}} {cell}  {goal:<10} {shown}")
    return lines


def table(results: dict[str, Outcome], plan: Plan) -> str:
    sub = f"{plan.clients} cl."
    lines = [
        *plan_lines(plan),
        "",
        f"{'':<52} {'---- sequential ----':>24} {'------------------ concurrent ------------------':>50}",
        f"{'target':<52} {'median':>7} {'p99':>7} {'srv CPU':>8} {'calls/s':>8} {'median':>7} {'p99':>7} "
        f"{'server':>6} {'client':>6} {'others':>6}",
        f"{'':<52} {'ms':>7} {'ms':>7} {'us/call':>8} {sub:>8} {'ms':>7} {'ms':>7} "
        f"{'CPU':>6} {'CPU':>6} {'CPU':>6}",
        "-" * 127,
    ]
    lines += [row(o, 52) for o in results.values()]
    lines += [
        "srv CPU us/call: the server process's CPU time per call.  CPU columns: CPU time / wall time while "
        "the load ran,",
        "for the server, this load-generating client, and every other process on the machine "
        "(2 cores = 200%).",
        f"! the client used >= {CLIENT_BOUND:.0%} of a core: the load generator limited that throughput, "
        "a lower bound",
        "  for the server (try --client raw).  'others' above a few % means a busy machine: noisier numbers.",
    ]
    if any(name.startswith("sdk") for name in results):
        lines.append("* measured through the official mcp client: includes that client's own cost")
    lines += ["", *headline_lines(headlines(results), 52)]
    return "\n".join(lines)


def dump_results(path: Path, plan: Any, results: Mapping[str, Any], headline: list[Headline]) -> None:
    """Write a benchmark run as JSON: machine, plan (a dataclass), per-target outcomes and the headline."""

    def latency(value: Latency | None) -> dict[str, float] | None:
        return None if value is None else {**asdict(value), "throughput": value.throughput}

    doc: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg": os.getloadavg(),
        },
        "plan": asdict(plan),
        "uvicorn": {**UVICORN_SETTINGS, "stack": stack()},
        "targets": {
            name: {**asdict(o), "sequential": latency(o.sequential), "concurrent": latency(o.concurrent)}
            for name, o in results.items()
        },
        "headline": [{"what": w, "value": v, "goal": g, "met": m} for w, v, g, m in headline],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def finish(
    output: Path, plan: Any, results: Mapping[str, Measured], text: str, headline: list[Headline]
) -> int:
    """Print the table, write the JSON, and return the exit status: 1 if a target failed."""
    print(text)
    dump_results(output, plan, results, headline)
    print(f"\nwrote {output}")
    return 1 if any(o.error for o in results.values()) else 0


# -- command line --------------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, *, profile_help: str, results: Path) -> None:
    """``--profile`` and ``--output``, after a script's own arguments."""
    parser.add_argument("--profile", type=Path, metavar="DIR", help=profile_help)
    parser.add_argument("--output", type=Path, default=results, help="JSON results file")


def chosen_targets(parser: argparse.ArgumentParser, only: list[str], targets: tuple[str, ...]) -> list[str]:
    """The targets named by ``--only`` (repeated or comma-separated; all by default), in table order."""
    chosen = [t.strip() for spec in only for t in spec.split(",") if t.strip()] or list(targets)
    unknown = sorted(set(chosen) - set(targets))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(targets)}")
    return [t for t in targets if t in chosen]


def load_counts(args: argparse.Namespace) -> dict[str, int]:
    """The load's sizes from ``--calls``, ``--rounds``, ``--calls-each`` and ``--quick``, as Plan fields."""
    return {
        "calls": args.calls or (200 if args.quick else 1000),
        "warmup": 20 if args.quick else 100,
        "rounds": args.rounds or (2 if args.quick else 5),
        "clients": args.clients,
        "calls_each": args.calls_each or (25 if args.quick else 200),
        "warmup_each": 2 if args.quick else 5,
        "concurrent_rounds": 1 if args.quick else 2,
    }
