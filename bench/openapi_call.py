"""One GET operation of a small local REST upstream: direct, through toolbridge (MCP), through FastMCP.

Servers (bench/serve_openapi.py), each its own process under uvicorn on a free 127.0.0.1 port with the
settings of bench/_uvicorn.py, all started before the first call and killed at the end:

* ``upstream``: a bare Starlette app with an OpenAPI 3.0 document and ``GET /pets/{petId}`` → small JSON;
* ``toolbridge``: ``Hub.from_file`` on a toolbridge.yaml with one ``kind: openapi`` connector ``up`` reading
  that document; tool ``up.get_pet`` called over MCP ``tools/call`` in the 2026-07-28 era (stateless),
  and by the ``toolbridge-session`` target in the 2025-11-25 era (``initialize``, then calls on the session);
* ``fastmcp``: FastMCP 4.1.6 ``FastMCP.from_openapi`` on the same document, defaults, served with
  ``stateless_http=True, json_response=True`` (bench/.venvs/fastmcp, created with uv when missing);
  tool ``getPet`` called in the same era.

Targets: ``direct`` (``GET /pets/1`` on the upstream), ``toolbridge``, ``fastmcp``, and, for information,
``inprocess`` (``hub.call`` through the same connector in this process: toolbridge without inbound HTTP).
Same client for all (``--client raw`` by default: one keep-alive HTTP/1.1 connection, request prepared
once). Sequential calls in rounds that visit every target in turn → median, p99, server CPU per call;
then 32 concurrent clients → throughput. Goals (issue #3): toolbridge ≤ direct + 0.6 ms median, and
≥ 2× FastMCP's throughput with 32 clients.

Usage: ``uv run python bench/openapi_call.py [--quick] [--client raw|httpx2] [--only direct,toolbridge]``.
Results: a table on stdout, JSON in bench/results/openapi_call.json. Exit status 1 if a target failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from _load import (
    BenchError,
    Call,
    Connect,
    HandshakeMcpTarget,
    InProcessTarget,
    Latency,
    LoadPlan,
    ModernMcpTarget,
    _check,
    connector,
    measure_all,
)
from _load import Entry as LoadEntry
from _procs import BENCH, Server, fastmcp_python, free_port, running
from _report import (
    CLIENT_BOUND,
    Headline,
    add_common_arguments,
    chosen_targets,
    finish,
    headline_lines,
    load_counts,
    plan_lines,
    row,
)

RESULTS = BENCH / "results" / "openapi_call.json"
SERVE = BENCH / "serve_openapi.py"
PASSTHROUGH = BENCH / "serve_passthrough.py"
PET_ID = 1
OVERHEAD_GOAL_MS = 0.6
CPU_GOAL_MS = 0.5  # issue 17: gateway CPU per call
INPROC_GOAL_MS = 0.35  # issue 17: hub.call through the connector, in-process
TPUT_GOAL = 2.0

LABELS = {
    "direct": "direct: GET /pets/1 on the upstream (Starlette)",
    "passthrough": "passthrough proxy (uvloop+httptools, raw): floor",
    "toolbridge": "toolbridge MCP tools/call up.get_pet, 2026-07-28",
    "toolbridge-session": "toolbridge MCP up.get_pet, 2025-11-25 session",
    "fastmcp": "FastMCP 4.1.6 from_openapi getPet, 2026-07-28",
    "inprocess": "(info) toolbridge hub.call in-process",
}
TARGETS = tuple(LABELS)


# -- targets -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectTarget:
    """``GET /pets/{id}`` on the upstream, with the same client; the first reply's JSON is checked."""

    name: str
    base_url: str
    connect: Connect

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        headers = {"accept": "application/json"}
        async with self.connect(self.base_url) as conn:
            send = conn.prepare("GET", f"{self.base_url}/pets/{PET_ID}", headers)
            checked = False

            async def call() -> None:
                nonlocal checked
                reply = await send(b"")
                _check(reply, self.name)
                if not checked:
                    if json.loads(reply.body).get("id") != PET_ID:
                        raise BenchError(f"{self.name}: unexpected reply {reply.body[:300]!r}")
                    checked = True

            yield call


# -- one target's state --------------------------------------------------------------------------------


@dataclass
class Entry(LoadEntry):
    """A target with, behind a gateway, the REST upstream and its CPU use during each concurrent run."""

    PROFILE_TOP = 30

    upstream: Server | None = None  # the REST upstream behind a gateway (None for direct)
    upstream_cpu: list[float] = field(default_factory=list)  # per concurrent run, seconds

    @property
    def profiled(self) -> bool:
        """``--profile`` samples the gateways only (toolbridge, FastMCP), not the upstream."""
        return self.server is not None and self.upstream is not None

    async def concurrent_round(self, plan: LoadPlan, calls_each: int) -> None:
        before = self.upstream.cpu_seconds() if self.upstream else 0.0
        await super().concurrent_round(plan, calls_each)
        if self.upstream:
            # includes the warm-up calls and the connection setup: a slight over-estimate
            self.upstream_cpu.append(self.upstream.cpu_seconds() - before)


@dataclass(frozen=True)
class Plan:
    calls: int
    warmup: int
    rounds: int
    clients: int
    calls_each: int
    warmup_each: int
    concurrent_rounds: int
    client: str
    profile: Path | None = None


# -- servers -------------------------------------------------------------------------------------------


CONFIG = """\
version: 1
server:
  database: "sqlite+aiosqlite:///:memory:"
connectors:
  up:
    kind: openapi
    spec: {upstream}/openapi.json
    allow_hosts: ["{host}"]  # the document and its server are on 127.0.0.1: past the SSRF guard
"""


def _config(upstream: Server) -> str:
    return CONFIG.format(upstream=upstream.base_url, host=upstream.base_url.removeprefix("http://"))


def start_servers(entries: list[Entry], plan: Plan, logs: Path, stack: ExitStack) -> None:
    """The upstream first (every target needs it), then one gateway per gateway target."""
    connect = connector(plan.client)
    port = free_port()
    print("  starting upstream", file=sys.stderr, flush=True)
    upstream = stack.enter_context(
        running("upstream", [sys.executable, str(SERVE), "upstream", str(port)], port, logs)
    )
    for entry in entries:
        try:
            if entry.name == "direct":
                entry.server = upstream
                entry.target = DirectTarget(entry.name, upstream.base_url, connect)
            elif entry.name == "passthrough":
                print("  starting passthrough", file=sys.stderr, flush=True)
                port = free_port()
                argv = [sys.executable, str(PASSTHROUGH), str(port), str(upstream.port)]
                entry.server = stack.enter_context(running("passthrough", argv, port, logs))
                entry.upstream = upstream
                entry.target = DirectTarget(entry.name, entry.server.base_url, connect)
            elif entry.name in ("toolbridge", "toolbridge-session"):
                print(f"  starting {entry.name}", file=sys.stderr, flush=True)
                config, key_file, port = logs / f"{entry.name}.yaml", logs / f"{entry.name}.key", free_port()
                config.write_text(_config(upstream))
                argv = [sys.executable, str(SERVE), "toolbridge", str(port), str(key_file), str(config)]
                entry.server = stack.enter_context(running(entry.name, argv, port, logs, wait_for=key_file))
                entry.upstream = upstream
                key = key_file.read_text().strip()
                url = f"{entry.server.base_url}/mcp"
                era = ModernMcpTarget if entry.name == "toolbridge" else HandshakeMcpTarget
                entry.target = era(entry.name, url, key, "up.get_pet", connect, {"petId": PET_ID})
            elif entry.name == "fastmcp":
                print("  starting fastmcp", file=sys.stderr, flush=True)
                port = free_port()
                argv = [str(fastmcp_python()), str(SERVE), "fastmcp", str(port), upstream.base_url]
                entry.server = stack.enter_context(running("fastmcp", argv, port, logs))
                entry.upstream = upstream
                entry.target = ModernMcpTarget(
                    entry.name, f"{entry.server.base_url}/mcp", None, "getPet", connect, {"petId": PET_ID}
                )
            else:  # inprocess: the hub is entered on the load side
                entry.upstream = upstream
        except Exception as exc:  # noqa: BLE001 - one server that does not start must not lose the others
            entry.fail(exc)


# -- load ----------------------------------------------------------------------------------------------


async def _enter_hub(logs: Path, entry: Entry, stack: AsyncExitStack) -> None:
    from toolbridge import Hub, Principal

    assert entry.upstream is not None
    config = logs / "inprocess.yaml"
    config.write_text(_config(entry.upstream))
    hub = await stack.enter_async_context(Hub.from_file(config))
    principal = Principal.local()
    result: dict[str, Any] = {}

    async def call() -> None:
        result["last"] = await hub.call(principal, "up.get_pet", {"petId": PET_ID})

    await call()
    if "Rex" not in json.dumps(result["last"], default=str):
        raise BenchError(f"inprocess: unexpected result {result['last']!r:.300}")
    entry.target = InProcessTarget(entry.name, call)


# -- report --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    name: str
    label: str
    sequential: Latency | None
    concurrent: Latency | None
    upstream_share: float | None
    error: str | None


def outcome(entry: Entry) -> Outcome:
    seq = Latency.of(entry.sequential) if entry.live and entry.sequential else None
    conc = Latency.of(entry.concurrent) if entry.live and entry.concurrent else None
    share = None
    if conc is not None and entry.upstream_cpu:
        share = sum(entry.upstream_cpu) / conc.seconds
    return Outcome(entry.name, LABELS[entry.name], seq, conc, share, entry.error)


def headlines(results: dict[str, Outcome], plan: Plan) -> list[Headline]:
    def median(name: str) -> float | None:
        o = results.get(name)
        return o.sequential.median_ms if o and o.sequential else None

    def tput(name: str) -> float | None:
        o = results.get(name)
        return o.concurrent.throughput if o and o.concurrent else None

    direct, tb, fm = median("direct"), median("toolbridge"), median("fastmcp")
    rows: list[Headline] = []
    overhead = tb - direct if tb is not None and direct is not None else None
    rows.append(
        (
            "toolbridge median - direct median (ms)",
            overhead,
            f"<= {OVERHEAD_GOAL_MS} ms",
            None if overhead is None else overhead <= OVERHEAD_GOAL_MS,
        )
    )
    ratio = tb / direct if tb is not None and direct else None
    rows.append(("toolbridge median / direct median", ratio, "(info)", None))
    fm_over = fm - direct if fm is not None and direct is not None else None
    rows.append(("FastMCP median - direct median (ms)", fm_over, "(info)", None))
    speed = fm / tb if fm is not None and tb else None
    rows.append(("FastMCP median / toolbridge median", speed, "(info)", None))
    t_tb, t_fm, t_direct = tput("toolbridge"), tput("fastmcp"), tput("direct")
    t_ratio = t_tb / t_fm if t_tb is not None and t_fm else None
    rows.append(
        (
            f"toolbridge {plan.clients}-client tput / FastMCP",
            t_ratio,
            f">= {TPUT_GOAL:g}x",
            None if t_ratio is None else t_ratio >= TPUT_GOAL,
        )
    )
    d_ratio = t_tb / t_direct if t_tb is not None and t_direct else None
    rows.append(("toolbridge tput / direct tput", d_ratio, "(info)", None))
    rows += floor_headlines(results)
    return rows


def floor_headlines(results: dict[str, Outcome]) -> list[Headline]:
    """toolbridge against the pass-through proxy: the hop's latency over direct, and CPU per call."""

    def seq(name: str) -> Latency | None:
        o = results.get(name)
        return o.sequential if o else None

    direct, floor, tb, inproc = seq("direct"), seq("passthrough"), seq("toolbridge"), seq("inprocess")
    rows: list[Headline] = []
    if direct and floor:
        rows.append(
            ("passthrough median - direct median (ms)", floor.median_ms - direct.median_ms, "(info)", None)
        )
    if direct and floor and tb:
        hop = floor.median_ms - direct.median_ms
        over = (tb.median_ms - direct.median_ms) / hop if hop > 0 else None
        rows.append(("toolbridge overhead / passthrough overhead", over, "(info)", None))
    if floor and tb:
        cpu = tb.server_cpu_us_per_call / 1000
        rows.append(("toolbridge gateway CPU per call (ms)", cpu, f"<= {CPU_GOAL_MS} ms", cpu <= CPU_GOAL_MS))
        rows.append(("passthrough CPU per call (ms)", floor.server_cpu_us_per_call / 1000, "(info)", None))
        ratio = tb.server_cpu_us_per_call / floor.server_cpu_us_per_call
        rows.append(("toolbridge CPU / passthrough CPU", ratio, "(info)", None))
    session = seq("toolbridge-session")
    if direct and session:
        over = session.median_ms - direct.median_ms
        rows.append(("session median - direct median (ms)", over, "(info)", None))
    if session:
        cpu = session.server_cpu_us_per_call / 1000
        rows.append(("session gateway CPU per call (ms)", cpu, "(info)", None))
    if inproc:
        rows.append(
            (
                "in-process hub.call median (ms)",
                inproc.median_ms,
                f"<= {INPROC_GOAL_MS} ms",
                inproc.median_ms <= INPROC_GOAL_MS,
            )
        )
    return rows


def table(results: dict[str, Outcome], plan: Plan) -> str:
    sub = f"{plan.clients} cl."
    lines = [
        *plan_lines(plan),
        "",
        f"{'':<50} {'---- sequential ----':>24} {'-' * 22 + ' concurrent ' + '-' * 22:>57}",
        f"{'target':<50} {'median':>7} {'p99':>7} {'srv CPU':>8} {'calls/s':>8} {'median':>7} {'p99':>7} "
        f"{'server':>6} {'upstr.':>6} {'client':>6} {'others':>6}",
        f"{'':<50} {'ms':>7} {'ms':>7} {'us/call':>8} {sub:>8} {'ms':>7} {'ms':>7} "
        f"{'CPU':>6} {'CPU':>6} {'CPU':>6} {'CPU':>6}",
        "-" * 132,
    ]
    lines += [row(o, 50, upstream=True, upstream_share=o.upstream_share) for o in results.values()]
    lines += [
        "srv CPU us/call: the server's CPU time per call (gateway's; for direct, the upstream's).",
        "CPU columns: CPU time / wall time during the concurrent load, for the server, the REST upstream",
        "behind it, this client, and every other process (2 cores = 200%). inprocess: server = this process.",
        f"! the client used >= {CLIENT_BOUND:.0%} of a core: its throughput is a lower bound for the server.",
        "",
        *headline_lines(headlines(results, plan), 50, pad_missing=True),
    ]
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[list[str], Plan, Path]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: a smoke run")
    parser.add_argument(
        "--only", action="append", default=[], metavar="TARGET", help=f"targets: {', '.join(TARGETS)}"
    )
    parser.add_argument("--calls", type=int, help="sequential calls per target (default 1000; 200 quick)")
    parser.add_argument("--rounds", type=int, help="sequential rounds (default 5; 2 quick)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--calls-each", type=int, help="calls per concurrent client (default 200; 25 quick)")
    parser.add_argument(
        "--client", choices=("raw", "httpx2"), default="raw", help="load client (default raw)"
    )
    add_common_arguments(
        parser,
        profile_help="py-spy the gateways (toolbridge, FastMCP) during the concurrent load; "
        "stacks/summaries to DIR",
        results=RESULTS,
    )
    args = parser.parse_args(argv)
    names = chosen_targets(parser, args.only, TARGETS)
    return names, Plan(**load_counts(args), client=args.client, profile=args.profile), args.output


def main(argv: list[str] | None = None) -> int:
    names, plan, output = parse_args(argv)
    print(f"openapi_call: {', '.join(names)} (client {plan.client})", file=sys.stderr, flush=True)
    entries = [Entry(name) for name in names]
    with tempfile.TemporaryDirectory(prefix="toolbridge-openapi-bench-") as tmp, ExitStack() as servers:
        logs = Path(tmp)
        start_servers(entries, plan, logs, servers)
        print("  measuring", file=sys.stderr, flush=True)
        anyio.run(measure_all, entries, plan, functools.partial(_enter_hub, logs))
    results = {entry.name: outcome(entry) for entry in entries}
    return finish(output, plan, results, table(results, plan), headlines(results, plan))


if __name__ == "__main__":
    sys.exit(main())
