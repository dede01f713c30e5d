"""Server processes for the benchmark: start on a free loopback port, wait until ready, measure CPU, kill.

Every wait here is bounded; every process started is a session leader so that ``stop`` ends it whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
FASTMCP_VENV = BENCH / ".venvs" / "fastmcp"
FASTMCP_SPEC = ("fastmcp==4.1.6", "uvicorn")
_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(Exception):
    """A benchmark server did not start; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (10 ms resolution)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    *,
    timeout: float = 60.0,
    wait_for: Path | None = None,
) -> Server:
    """Start ``argv`` and return once it accepts TCP connections on ``port`` (and ``wait_for`` exists)."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=BENCH,
        )
    server = Server(name, process, port, log)
    try:
        _wait_ready(server, timeout, wait_for)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_ready(server: Server, timeout: float, wait_for: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        if (wait_for is None or wait_for.exists()) and _accepts(server.port):
            return
        time.sleep(0.05)
    raise ServerFailed(f"{server.name} was not ready within {timeout:g} s:\n{server.log_tail()}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def stop(server: Server, *, grace: float = 5.0) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left after ``grace`` seconds."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.process.wait(timeout=grace)


@contextlib.contextmanager
def running(
    name: str, argv: Sequence[str], port: int, log_dir: Path, *, wait_for: Path | None = None
) -> Iterator[Server]:
    server = start(name, argv, port, log_dir, wait_for=wait_for)
    try:
        yield server
    finally:
        stop(server)


def find_uv() -> str:
    """``uv`` from PATH, else the one ``make`` installs into ``.tools/bin`` (make does not put it on PATH)."""
    found = shutil.which("uv") or shutil.which("uv", path=str(BENCH.parent / ".tools" / "bin"))
    if found is None:
        raise ServerFailed(
            "the FastMCP baseline needs uv to create bench/.venvs/fastmcp: run 'make env' (it installs uv "
            "into .tools/bin) or put uv on PATH"
        )
    return found


def fastmcp_python(*, timeout: float = 300.0) -> Path:
    """The interpreter of bench/.venvs/fastmcp, created with ``uv`` if it is missing."""
    python = FASTMCP_VENV / "bin" / "python"
    marker = FASTMCP_VENV / ".bench-ready"
    spec = " ".join(FASTMCP_SPEC)
    if python.exists() and marker.exists() and marker.read_text() == spec:
        return python
    uv = find_uv()
    print(f"creating {FASTMCP_VENV.relative_to(BENCH.parent)} ({spec}) ...", file=sys.stderr, flush=True)
    subprocess.run(
        [uv, "venv", "-q", "--allow-existing", "--python", "3.11", str(FASTMCP_VENV)],
        check=True,
        timeout=timeout,
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), *FASTMCP_SPEC], check=True, timeout=timeout
    )
    marker.write_text(spec)
    return python
