"""What a benchmark run found: the per-target outcome, the headline ratios against their goals, the table
and the JSON document."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


def _row(o: Outcome) -> str:
    s, c = o.sequential, o.concurrent
    if o.error or s is None or c is None:
        return f"{o.label:<52} FAILED: {(o.error or 'no result')[:200]}"
    client = "-" if o.name == "inprocess" else format(c.client_share, "6.0%")
    bound = "!" if o.name != "inprocess" and c.client_share >= CLIENT_BOUND else " "
    return (
        f"{o.label:<52} {s.median_ms:7.3f} {s.p99_ms:7.3f} {s.server_cpu_us_per_call:8.0f} "
        f"{c.throughput:7.0f}{bound} {c.median_ms:7.2f} {c.p99_ms:7.2f} {c.server_share:6.0%} {client:>6} "
        f"{c.other_share:6.0%}"
    )


def table(results: dict[str, Outcome], plan: Plan) -> str:
    sub = f"{plan.clients} cl."
    lines = [
        f"client: {plan.client};  sequential: {plan.calls} calls (after {plan.warmup} warm-up) on one "
        f"keep-alive connection, in {plan.rounds} rounds interleaved across targets;",
        f"concurrent: {plan.clients} clients x {plan.calls_each} calls, one connection each, "
        f"in {plan.concurrent_rounds} round(s)",
        "",
        f"{'':<52} {'---- sequential ----':>24} {'------------------ concurrent ------------------':>50}",
        f"{'target':<52} {'median':>7} {'p99':>7} {'srv CPU':>8} {'calls/s':>8} {'median':>7} {'p99':>7} "
        f"{'server':>6} {'client':>6} {'others':>6}",
        f"{'':<52} {'ms':>7} {'ms':>7} {'us/call':>8} {sub:>8} {'ms':>7} {'ms':>7} "
        f"{'CPU':>6} {'CPU':>6} {'CPU':>6}",
        "-" * 127,
    ]
    lines += [_row(o) for o in results.values()]
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
    lines += ["", f"{'headline':<52} {'value':>8}  {'goal':<10} met"]
    for what, value, goal, met in headlines(results):
        shown = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"{what:<52} {_f(value, '8.2f')}  {goal:<10} {shown}")
    return "\n".join(lines)


def write_json(results: dict[str, Outcome], plan: Plan, path: Path) -> None:
    dump_results(path, plan, results, headlines(results))


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
