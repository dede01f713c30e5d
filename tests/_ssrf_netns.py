"""The SSRF check on real sockets, run by tests/test_ssrf.py inside a fresh network and mount namespace.

``python -m tests._ssrf_netns WORKDIR REPORT`` — only ever inside ``unshare --net --mount``: it brings up
``lo``, adds the private and metadata addresses of tests/_hostile.py to it, answers name lookups from a
hosts file bound over ``/etc/hosts`` (this namespace's mounts only), listens on every port the hostile
URLs name, on every address, and counts each connection that is not for the trap. Then it drives every
site (tests/_ssrf_sites.py) against the real network and writes what it saw to REPORT as JSON.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio

from tests._hostile import HOSTS, LO_ADDRESSES, PUBLIC, SERVICE_PORTS
from tests._ssrf_sites import MOCK_ONLY, SITES, Net, applicable, control, trap_answer
from toolbridge._urlguard import system_addresses, system_resolver


class _Seen:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[str] = []
        self.trap_hits = 0


SEEN = _Seen()
TRAPS: set[tuple[str, int]] = {(PUBLIC, 80), (PUBLIC, 443)}  # 443: the control's TLS fails there


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        address, port = self.connection.getsockname()[:2]
        parts = urlsplit(self.path)
        origin = f"http://{self.headers.get('host', f'{address}:{port}')}"
        status, headers, body = trap_answer(origin, parts.path, dict(parse_qsl(parts.query)))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value.encode().decode("latin-1"))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """Serves the trap on its addresses; any other connection is counted and closed unanswered."""

    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        local = request.getsockname()[:2]
        if (local[0], local[1]) in TRAPS:
            with SEEN.lock:
                SEEN.trap_hits += 1
            super().process_request(request, client_address)
            return
        with SEEN.lock:
            SEEN.connections.append(f"{local[0]}:{local[1]}")
        self.shutdown_request(request)


class _Server6(_Server):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def _network(workdir: Path) -> list[str]:
    """``lo`` up with the hostile addresses, the hosts file in place; what could not be set up."""
    problems = []
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in LO_ADDRESSES:
        added = subprocess.run(["ip", "addr", "add", address, "dev", "lo"], capture_output=True, text=True)
        if added.returncode != 0:
            problems.append(f"ip addr add {address}: {added.stderr.strip()}")
    hosts = workdir / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{address} {name}" for name, addresses in HOSTS.items() for address in addresses]
    hosts.write_text("\n".join(lines) + "\n")
    (workdir / "host.conf").write_text("multi on\n")
    for source, target in ((hosts, "/etc/hosts"), (workdir / "host.conf", "/etc/host.conf")):
        if Path(target).exists():  # a bind mount needs its target (glibc answers every line without one)
            subprocess.run(["mount", "--bind", str(source), target], check=True)
    return problems


def _listen() -> tuple[list[_Server], int]:
    servers: list[_Server] = []
    for port in (80, 443, *SERVICE_PORTS):
        servers += [_Server(("0.0.0.0", port), _Handler), _Server6(("::", port), _Handler)]
    trap = _Server(("127.0.0.1", 0), _Handler)
    TRAPS.add(("127.0.0.1", trap.server_address[1]))
    servers.append(trap)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers, int(trap.server_address[1])


async def _drive(net: Net, seconds: dict[str, float]) -> dict[str, list[str]]:
    not_refused: dict[str, list[str]] = {}
    for site, driver in sorted(SITES.items()):
        if site in MOCK_ONLY:
            continue
        started = time.process_time()
        try:
            failed = await driver(net, applicable(site) + control(site))
        except Exception as exc:  # noqa: BLE001 (the probe's top level: a crash is a finding, reported)
            failed = [f"{type(exc).__name__}: {exc}"]
        seconds[site] = round(time.process_time() - started, 3)
        if failed:
            not_refused[site] = failed
    return not_refused


def main(workdir: Path, report: Path) -> None:
    problems = _network(workdir)
    split = system_addresses("split.test", 80)
    if "127.0.0.1" not in split:
        problems.append(f"split.test resolves to {list(split)} only: the hosts file gave one answer")
    servers, port = _listen()
    net = Net(f"http://127.0.0.1:{port}", None, None, system_resolver, system_addresses, workdir)
    seconds: dict[str, float] = {}
    not_refused = anyio.run(_drive, net, seconds)
    for server in servers:
        server.shutdown()
    with SEEN.lock:
        result = {
            "not_refused": not_refused,
            "connections": SEEN.connections,
            "trap_hits": SEEN.trap_hits,
            "setup_problems": problems,
            "cpu_seconds": seconds,
        }
    report.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
