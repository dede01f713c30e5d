"""uvicorn serving an ASGI app in a daemon thread on a pre-bound socket, for tests that need a real port."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from tests._patience import patience


def loopback_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a free port (read it back with ``getsockname()``)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def uvicorn_thread(
    app: Any,
    sock: socket.socket,
    *,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
    **config: Any,
) -> Iterator[uvicorn.Server]:
    """Serve ``app`` on ``sock`` until the block exits; the socket is closed afterwards.

    ``config`` goes to ``uvicorn.Config`` (``log_level`` defaults to ``"warning"``). Entering waits, with a
    bounded poll, until uvicorn reports it has started (lifespan startup included); on exit the server is
    told to stop and its thread joined.
    """
    config.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + patience(start_timeout)
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, f"uvicorn did not start within {patience(start_timeout):g} s"
            time.sleep(0.02)  # bounded polling for readiness
        yield server
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(timeout=patience(stop_timeout))
        sock.close()


@contextmanager
def module_server(module: str, port: int, path: str = "/mcp") -> Iterator[str]:
    """``python -m module PORT`` from the checkout's root, a server on 127.0.0.1:PORT (an MCP server at
    ``path``); yields its URL once it accepts connections, kills it on exit."""
    root = Path(__file__).parents[1]
    command = [sys.executable, "-m", module, str(port)]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + patience(30)
        while True:
            assert process.poll() is None and time.monotonic() < deadline, f"{module} did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=patience(1)).close()
                break
            except OSError:
                time.sleep(0.1)  # bounded polling for readiness
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        process.kill()
        process.wait(timeout=patience(10))
