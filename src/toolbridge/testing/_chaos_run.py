"""A chaos run against a real deployment: processes, real HTTP, ``kill -9``, and a reconciliation.

:func:`chaos_run` starts a :mod:`chaos upstream <toolbridge.testing._chaos_upstream>` process, one or more
``toolbridge serve`` replicas and ``toolbridge worker`` processes on one database (SQLite file or
PostgreSQL) with the settings users get — only the outbox's backoff is shortened so a run drains — and
drives seeded calls through the real REST and MCP surfaces as agents do: reads, writes with an
idempotency key (retried with the same key when the answer is lost, after ``Retry-After`` on 409) and
writes without one (never retried once sent). Meanwhile it ``kill -9``\\ s servers and workers and
starts them again. Then it waits for the outbox to drain and counts, per outcome the agent saw, the
writes the upstream applied twice (duplicates) and those it never applied although the agent was told
they succeeded or were queued (losses).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

from toolbridge.testing._chaos_upstream import DOCUMENT

__all__ = ["ChaosPlan", "ChaosReport", "chaos_run"]

_WAIT_AND_RETRY = frozenset({"circuit_open", "upstream_busy", "rate_limited", "storage_error"})
"""Answers that tell an agent to come back later: reads and keyed writes do, after ``retry_after``."""
TOOL = "chaos.create_item"
READ = "chaos.get_item"
_ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "chaos", "version": "1"},
}


@dataclass(frozen=True)
class ChaosPlan:
    folder: Path
    """Where configuration, logs and the SQLite file go."""
    database: str = ""
    """Database URL; empty: a SQLite file in ``folder``."""
    calls: int = 300
    replicas: int = 1
    workers: int = 0
    """Separate ``toolbridge worker`` processes; with none, each replica runs its own worker."""
    kills: tuple[str, ...] = ("server", "server")
    """What to ``kill -9`` during the run, in order, evenly spread: ``server`` (replica 0) or ``worker``."""
    rate: float = 0.3
    seed: int = 1
    concurrency: int = 16
    mcp_share: float = 0.25
    lease: float = 3.0
    """The outbox lease, shorter than a call that hits a hang (the heartbeat must keep it)."""
    drain_timeout: float = 300.0


@dataclass
class ChaosReport:
    outcomes: Counter[str] = field(default_factory=Counter)
    """``kind:outcome`` → calls (kind: read, keyed, unkeyed; outcome: ok, queued, unknown, <code>)."""
    duplicates: Counter[str] = field(default_factory=Counter)
    """``kind:outcome`` → writes the upstream applied more than once."""
    lost: Counter[str] = field(default_factory=Counter)
    """``kind:outcome`` → writes told ok or queued that the upstream never applied."""
    outbox: Counter[str] = field(default_factory=Counter)
    waits: Counter[str] = field(default_factory=Counter)
    """Answers after which an agent waited as told and called again (``conflict``, ``circuit_open`` …)."""
    faults: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    seconds: float = 0.0

    def reads_ok(self) -> float:
        reads = sum(n for k, n in self.outcomes.items() if k.startswith("read:"))
        return self.outcomes["read:ok"] / reads if reads else 1.0

    def lines(self) -> list[str]:
        out = [f"{sum(self.outcomes.values())} calls in {self.seconds:.1f} s, {self.kills} kill -9"]
        out.append(f"faults injected upstream: {self.faults}")
        out.append(f"outbox after draining: {dict(self.outbox)}")
        out.append(f"answers an agent waited on (Retry-After) and called again: {dict(self.waits)}")
        for key in sorted(self.outcomes):
            dup, lost = self.duplicates[key], self.lost[key]
            out.append(f"  {key:32} {self.outcomes[key]:6}   duplicated {dup:3}   lost {lost:3}")
        out.append(f"reads ok: {self.reads_ok():.2%}")
        return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Procs:
    """The run's processes: started in their own session, killed with SIGKILL, logs in the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._argv: dict[str, list[str]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        self._argv[name] = argv
        with (self.folder / f"{name}.log").open("ab") as log:
            self.running[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def kill(self, name: str) -> None:
        process = self.running[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def restart(self, name: str) -> None:
        self.start(name, self._argv[name])

    def stop_all(self) -> None:
        for name in list(self.running):
            if self.running[name].poll() is None:
                self.kill(name)

    def log_tail(self, name: str) -> str:
        text = (self.folder / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])


def _toolbridge(*args: str) -> list[str]:
    return [sys.executable, "-m", "toolbridge", *args]


async def _wait_ready(url: str, procs: _Procs, name: str, within: float = 120.0) -> None:
    """Poll ``url`` until it answers (a process starting up has nothing to wait on but its port)."""
    with anyio.fail_after(within):
        async with httpx2.AsyncClient(trust_env=False, timeout=5) as http:
            while True:
                if procs.running[name].poll() is not None:
                    raise RuntimeError(f"{name} exited at start:\n{procs.log_tail(name)}")
                try:
                    await http.get(url)
                    return
                except httpx2.TransportError:
                    await anyio.sleep(0.2)


def _config(plan: ChaosPlan, upstream_port: int) -> Path:
    database = plan.database or f"sqlite+aiosqlite:///{plan.folder / 'toolbridge.db'}"
    (plan.folder / "chaos.json").write_text(json.dumps(DOCUMENT))
    config = {
        "server": {"database": database},
        "outbox": {"base_delay": 0.5, "max_delay": 5, "lease": plan.lease},
        "connectors": {
            "chaos": {
                "kind": "openapi",
                "spec": "chaos.json",
                "base_url": f"http://127.0.0.1:{upstream_port}",
                "resilience": {"on_exhausted": "queue"},
            }
        },
        "agents": {"driver": {"scopes": ["*"]}},
    }
    path = plan.folder / "toolbridge.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@dataclass
class _Run:
    plan: ChaosPlan
    procs: _Procs
    servers: list[str]
    key: str
    report: ChaosReport = field(default_factory=ChaosReport)
    seen: dict[str, str] = field(default_factory=dict)
    """op → the outcome its agent saw."""
    done: int = 0
    marks: list[tuple[int, anyio.Event]] = field(default_factory=list)
    """(calls done, set when reached): when the chaos monkey strikes."""

    def url(self, i: int) -> str:
        port = self.procs.folder.joinpath(f"{self.servers[i % len(self.servers)]}.port").read_text()
        return f"http://127.0.0.1:{port}"


def chaos_run(plan: ChaosPlan) -> ChaosReport:
    """Run ``plan`` (blocking; starts and always stops its processes) and return what it found."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    procs = _Procs(plan.folder)
    try:
        return anyio.run(_main, plan, procs)
    finally:
        procs.stop_all()


async def _main(plan: ChaosPlan, procs: _Procs) -> ChaosReport:
    started = time.monotonic()
    upstream_port = free_port()
    procs.start(
        "upstream",
        [sys.executable, "-c", "from toolbridge.testing._chaos_upstream import main; main()",
         "--port", str(upstream_port), "--rate", str(plan.rate), "--seed", str(plan.seed)],
    )  # fmt: skip
    await _wait_ready(f"http://127.0.0.1:{upstream_port}/_effects", procs, "upstream")
    config = str(_config(plan, upstream_port))
    key = _create_agent(config)
    servers = [f"server{i}" for i in range(plan.replicas)]
    for name in servers:
        port = free_port()
        (plan.folder / f"{name}.port").write_text(str(port))
        worker = [] if plan.workers == 0 else ["--no-worker"]
        procs.start(name, _toolbridge("serve", "-c", config, "--port", str(port), *worker))
    for i in range(plan.workers):
        procs.start(f"worker{i}", _toolbridge("worker", "-c", config))
    run = _Run(plan, procs, servers, key)
    for i, name in enumerate(servers):
        await _wait_ready(run.url(i) + "/v1/health", procs, name)
    await _drive(run)
    await _drain(run)
    await _reconcile(run, upstream_port)
    run.report.seconds = time.monotonic() - started
    return run.report


def _create_agent(config: str) -> str:
    out = subprocess.run(
        _toolbridge("agents", "create", "driver", "-c", config), capture_output=True, text=True, check=True
    )
    return next(word for word in out.stdout.split() if word.startswith("tb_"))


async def _drive(run: _Run) -> None:
    plan = run.plan
    slots = anyio.Semaphore(plan.concurrency)
    run.marks = [
        (plan.calls * (n + 1) // (len(plan.kills) + 1), anyio.Event()) for n in range(len(plan.kills))
    ]
    async with httpx2.AsyncClient(trust_env=False, timeout=120) as http, anyio.create_task_group() as tg:
        tg.start_soon(_chaos_monkey, run)
        for i in range(plan.calls):
            await slots.acquire()
            tg.start_soon(_one, run, http, i, slots)


async def _chaos_monkey(run: _Run) -> None:
    for target, (_, reached) in zip(run.plan.kills, run.marks, strict=True):
        await reached.wait()
        name = run.servers[0] if target == "server" else "worker0"
        run.procs.kill(name)
        run.report.kills += 1
        await anyio.sleep(0.5)
        run.procs.restart(name)
        if target == "server":
            await _wait_ready(run.url(0) + "/v1/health", run.procs, name)


async def _one(run: _Run, http: httpx2.AsyncClient, i: int, slots: anyio.Semaphore) -> None:
    rng = random.Random(run.plan.seed * 1_000_003 + i)
    kind = ("read", "keyed", "unkeyed")[i % 3]
    surface = "mcp" if rng.random() < run.plan.mcp_share else "rest"
    op = f"{kind}-{i}"
    try:
        outcome = await _agent(run, http, i, kind, surface, op)
    finally:
        slots.release()
        run.done += 1
        for mark, reached in run.marks:
            if run.done >= mark:
                reached.set()
    run.report.outcomes[f"{kind}:{outcome}"] += 1
    run.seen[op] = outcome


async def _agent(run: _Run, http: httpx2.AsyncClient, i: int, kind: str, surface: str, op: str) -> str:
    """Call as an agent would: reads and keyed writes again after a lost answer, unkeyed writes never."""
    key = f"key-{run.plan.seed}-{i}" if kind == "keyed" else None
    tool, args = (READ, {"id": i}) if kind == "read" else (TOOL, {"op": op})
    for attempt in range(60):
        try:
            answer = await _call(run, http, i + attempt, surface, tool, args, key)
        except httpx2.ConnectError:
            answer = ("refused", 0.5)  # nothing sent: safe to try again, another replica if any
        except httpx2.TransportError:
            if kind == "unkeyed":
                return "unknown"
            answer = ("lost", 0.5)
        outcome, wait = answer
        if wait is None:
            return outcome
        await anyio.sleep(wait)
    return "gave_up"


async def _call(
    run: _Run, http: httpx2.AsyncClient, i: int, surface: str, tool: str, args: Any, key: str | None
) -> tuple[str, float | None]:
    """One request; returns (outcome, None) when final, or (why, seconds to wait) to try again."""
    headers = {"Authorization": f"Bearer {run.key}"}
    if surface == "rest":
        if key:
            headers["Idempotency-Key"] = key
        response = await http.post(
            f"{run.url(i)}/v1/tools/{tool}/call", json={"arguments": args}, headers=headers
        )
        if response.status_code in (200, 202):
            return ("ok" if response.status_code == 200 else "queued"), None
        problem = response.json()
    else:
        problem = await _mcp(run, http, i, tool, args, key, headers)
        if "answer" in problem:
            return problem["answer"], None
    code = str(problem.get("code", "error"))
    safe = key is not None or tool == READ
    if code == "conflict" or (code in _WAIT_AND_RETRY and safe):  # as told: after Retry-After
        run.report.waits[code] += 1
        return code, min(60.0, float(problem.get("retry_after") or 1))
    return ("unknown" if code == "outcome_unknown" else code), None


async def _mcp(
    run: _Run,
    http: httpx2.AsyncClient,
    i: int,
    tool: str,
    args: Any,
    key: str | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    meta: dict[str, Any] = dict(_ENVELOPE)
    if key:
        meta["toolbridge/idempotency-key"] = key
    body = {
        "jsonrpc": "2.0",
        "id": i,
        "method": "tools/call",
        "params": {"name": tool, "arguments": args, "_meta": meta},
    }
    headers = {
        **headers,
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": tool,
    }
    response = await http.post(f"{run.url(i)}/mcp", json=body, headers=headers)
    message = _json_message(response.text)
    if "error" in message:
        data = message["error"].get("data")
        return data if isinstance(data, dict) else {"code": "protocol_error"}
    result = message["result"]
    if not result.get("isError"):
        value = result.get("structuredContent") or {}
        return {"answer": "queued" if value.get("status") == "queued" else "ok"}
    for value in (result.get("_meta") or {}).values():
        if isinstance(value, dict) and "code" in value:
            return value
    return {"code": "error"}


def _json_message(text: str) -> dict[str, Any]:
    """The JSON-RPC answer, whether sent as JSON or as the last ``data:`` event of an SSE stream."""
    if text.lstrip().startswith("{"):
        return dict(json.loads(text))
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    return dict(json.loads(data[-1]))


async def _drain(run: _Run) -> None:
    """Wait (bounded) until no outbox item is still queued, running or parked."""
    async with httpx2.AsyncClient(trust_env=False, timeout=30) as http:
        with anyio.fail_after(run.plan.drain_timeout):
            while True:
                try:
                    pending = [s for s in ("queued", "running", "parked") if await _outbox(run, http, s, 1)]
                except httpx2.TransportError:
                    pending = ["(server away)"]
                if not pending:
                    return
                await anyio.sleep(0.5)


async def _outbox(run: _Run, http: httpx2.AsyncClient, state: str, limit: int = 500) -> list[dict[str, Any]]:
    response = await http.get(
        f"{run.url(0)}/v1/outbox",
        params={"limit": limit, "state": state},
        headers={"Authorization": f"Bearer {run.key}"},
    )
    response.raise_for_status()
    return list(response.json()["items"])


async def _reconcile(run: _Run, upstream_port: int) -> None:
    async with httpx2.AsyncClient(trust_env=False, timeout=30) as http:
        report = (await http.get(f"http://127.0.0.1:{upstream_port}/_effects")).json()
        for state in ("done", "failed"):
            run.report.outbox[state] = len(await _outbox(run, http, state))
    effects: dict[str, int] = report["effects"]
    run.report.faults = report["faults"]
    for op, outcome in run.seen.items():
        kind = op.split("-", 1)[0]
        if kind == "read":
            continue
        applied = effects.get(op, 0)
        if applied > 1:
            run.report.duplicates[f"{kind}:{outcome}"] += 1
        if applied == 0 and outcome in ("ok", "queued"):
            run.report.lost[f"{kind}:{outcome}"] += 1
