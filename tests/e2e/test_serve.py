"""`toolbridge serve` as a real process on 127.0.0.1: what `make run` starts, used as a newcomer would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from tests._patience import patience

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart.yaml"
TOOLBRIDGE = [sys.executable, "-m", "toolbridge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base: str
    key: str
    cwd: Path


@contextmanager
def serving(
    config: Path, cwd: Path, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Server]:
    """``toolbridge serve -c config`` as a process in ``cwd`` on ``port`` (None: a free one), with a fresh
    key for the agent ``assistant``; stopped on exit."""
    port = port or free_port()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.Popen(
        [*TOOLBRIDGE, "serve", "-c", str(config), "--port", str(port), "--create-agent", "assistant"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        key = _read_key(proc)
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base)
        yield Server(base, key, cwd)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=patience(15))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=patience(15))
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(EXAMPLE, tmp_path_factory.mktemp("serve")) as served:
        yield served


def _read_key(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + patience(30)
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"\(shown once\): (tb_\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("the server printed no key:\n" + "".join(lines))


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{base}/healthz", timeout=patience(1)).json()["status"] == "ok":
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not become healthy within 30 s")


def test_rest_list_and_call_then_audit_shows_them(server: Server) -> None:
    headers = {"Authorization": f"Bearer {server.key}"}
    with httpx2.Client(base_url=server.base, headers=headers, trust_env=False) as http:
        tools = http.get("/v1/tools").json()["tools"]
        assert "util.calculate" in [t["name"] for t in tools]
        result = http.post("/v1/tools/util.calculate/call", json={"arguments": {"expression": "6*7"}})
        assert result.status_code == 200 and result.json()["result"] == 42.0
        request_id = result.json()["request_id"]
        denied = http.post("/v1/tools/util.calculate/call", json={"arguments": {"expression": 1}})
        assert denied.status_code == 422
    deadline = time.monotonic() + patience(10)
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:  # the audit writer batches; poll the other process's view
        out = subprocess.run(
            [*TOOLBRIDGE, "audit", "tail", "--json", "-c", str(EXAMPLE)],
            cwd=server.cwd,
            capture_output=True,
            text=True,
            timeout=patience(60),
            check=True,
        ).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        ok = any(r["request_id"] == request_id for r in rows)  # (other tests' calls may be there too)
        if ok and any(r["error_code"] == "invalid_arguments" for r in rows):
            break
        time.sleep(0.2)
    assert any(r["request_id"] == request_id and r["outcome"] == "ok" for r in rows)
    assert any(r["error_code"] == "invalid_arguments" for r in rows)
    verify = subprocess.run(
        [*TOOLBRIDGE, "audit", "verify", "-c", str(EXAMPLE)],
        cwd=server.cwd,
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert verify.returncode == 0, verify.stderr


def test_python_client_against_the_server(server: Server) -> None:
    import anyio

    from toolbridge import Client, ToolNotFound

    async def main() -> None:
        async with Client(server.base, api_key=server.key) as client:
            note = await client.call("notes.add", {"text": "from the client"})
            listed = await client.call("notes.list", {"contains": "client"})
            assert listed.value[0]["id"] == note.value["id"]
            with pytest.raises(ToolNotFound):
                await client.call("notes.ad", {})

    anyio.run(main)


def test_readme_client_example_against_the_server(server: Server) -> None:
    from tests.test_docs import python_blocks

    [block] = [b for b in python_blocks() if "Client(" in b]
    code = block.replace("http://127.0.0.1:8080", server.base).replace('"tb_..."', repr(server.key))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=patience(60)
    )
    assert result.returncode == 0, result.stderr
    assert "util.calculate" in result.stdout and result.stdout.strip().endswith("9.0")


def test_health_command_reads_the_running_server(server: Server) -> None:
    result = subprocess.run(
        [*TOOLBRIDGE, "health", "--url", server.base, "--key", server.key],
        capture_output=True,
        text=True,
        timeout=patience(60),
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "util" in result.stdout and "closed" in result.stdout and "ejected" in result.stdout


# A stdio MCP server that reports the ports of the listening sockets it was started with, then serves as
# tests/connectors/mcp/raw_server.py.
REPORTS_LISTENERS = """import json, os, socket, sys
ports = []
for fd in sorted(map(int, os.listdir("/proc/self/fd"))):
    if fd < 3:
        continue
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        continue
    with sock:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            ports.append(sock.getsockname()[1])
with open(os.environ["REPORT"], "w") as out:
    json.dump(ports, out)
os.execv(sys.executable, [sys.executable, os.environ["RAW_SERVER"]])
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_a_stdio_server_does_not_inherit_the_listening_socket(tmp_path: Path) -> None:
    """The socket was made inheritable: a stdio MCP server started under uvloop held toolbridge's port, so
    after toolbridge was killed a server still running kept it (restarts failed, connections hung)."""
    script, report, mode = tmp_path / "reports.py", tmp_path / "ports.json", tmp_path / "mode"
    script.write_text(REPORTS_LISTENERS)
    mode.write_text("serve")
    raw = Path(__file__).parents[1] / "connectors" / "mcp" / "raw_server.py"
    env = {
        "REPORT": str(report),
        "RAW_SERVER": str(raw),
        "STARTS_FILE": str(tmp_path / "starts"),
        "MODE_FILE": str(mode),
    }
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "server": {"database": f"sqlite+aiosqlite:///{tmp_path}/tb.db"},
                "connectors": {
                    "raw": {
                        "kind": "mcp",
                        "command": sys.executable,
                        "args": [str(script)],
                        "env": env,
                        "approve": "all-on-first-connect",
                        "protocol": "2025-11-25",
                    }
                },
                "agents": {"assistant": {"scopes": ["*"]}},
            }
        )
    )
    with serving(config, tmp_path) as served:
        tools = httpx2.get(f"{served.base}/v1/tools", headers={"Authorization": f"Bearer {served.key}"})
        assert "raw.ping" in tools.text, tools.text
        port = int(served.base.rsplit(":", 1)[1])
        inherited = json.loads(report.read_text())
    assert port not in inherited, f"the stdio server holds toolbridge's port {port}: {inherited}"
