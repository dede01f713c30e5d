"""A clean stop of `toolbridge serve` (SIGTERM, as systemd, docker and Kubernetes send it) leaves the SQLite
database whole in its file: a real server process, a real SQLite file."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from tests._patience import patience

EXAMPLE = Path(__file__).parents[2] / "examples" / "quickstart.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_key(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    lines = []
    while line := proc.stdout.readline():  # bounded by the caller's kill on a hang
        lines.append(line)
        if match := re.search(r"\(shown once\): (tb_\S+)", line):
            return match.group(1)
    raise AssertionError("the server printed no key:\n" + "".join(lines))


def _start(command: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _ensure_stopped(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=patience(15))
    if proc.stdout is not None:
        proc.stdout.close()


def _audited_tools(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT tool FROM audit_events ORDER BY seq")]
    finally:
        conn.close()


def test_a_server_stopped_with_sigterm_leaves_every_row_in_the_database_file(tmp_path: Path) -> None:
    """Regression: uvicorn stops gracefully on SIGTERM and then raises the signal again; with Python's
    default handler back in place that ended the process before the hub closed. The database's connections
    were never closed, so SQLite never checkpointed: the last commits were only in tb.db-wal, and a backup
    copy of tb.db alone lacked them (found by an outside probe of upgrades); audit entries still queued
    were lost with it."""
    db = tmp_path / "tb.db"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "toolbridge",
        "serve",
        "-c",
        str(EXAMPLE),
        "--database",
        f"sqlite:///{db}",
    ]
    proc = _start([*command, "--port", str(port), "--create-agent", "assistant"], tmp_path)
    try:
        key = _read_key(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + patience(30)
        with httpx2.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, trust_env=False
        ) as http:
            while True:
                try:
                    if http.get("/healthz", timeout=patience(1)).status_code == 200:
                        break
                except httpx2.TransportError:
                    assert time.monotonic() < deadline, "the server did not become healthy"
                    time.sleep(0.1)
            for expression in ("1+1", "2+2", "3+3"):
                called = http.post(
                    "/v1/tools/util.calculate/call", json={"arguments": {"expression": expression}}
                )
                assert called.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=patience(30)) == 0  # a clean stop, as on Ctrl-C
    finally:
        _ensure_stopped(proc)
    wal = db.with_name("tb.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed: everything is in tb.db
    backup = tmp_path / "backup.db"
    shutil.copyfile(db, backup)  # the file alone, as a backup of it would be
    assert _audited_tools(backup) == ["util.calculate"] * 3


def test_a_worker_stopped_with_sigterm_closes_the_hub_and_exits_0(tmp_path: Path) -> None:
    """`toolbridge worker` ended at once on SIGTERM (143), inside `async with hub`: connections unclosed,
    the WAL not checkpointed (found by an outside probe of upgrades: 300 KB left in w.db-wal)."""
    db = tmp_path / "tb.db"
    command = [sys.executable, "-m", "toolbridge", "--log-level", "info", "worker", "-c", str(EXAMPLE)]
    proc = _start([*command, "--database", f"sqlite:///{db}"], tmp_path)
    try:
        assert proc.stdout is not None
        lines = []
        while line := proc.stdout.readline():  # bounded by the kill below on a hang
            lines.append(line)
            if "worker running" in line:
                break
        assert lines and "worker running" in lines[-1], "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=patience(30)) == 0
    finally:
        _ensure_stopped(proc)
    wal = db.with_name("tb.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_mcp_over_stdio_stopped_with_sigterm_closes_the_hub_and_exits_0(tmp_path: Path) -> None:
    """`toolbridge mcp` ended at once on SIGTERM (143; MCP clients send it when closing stdin is not
    enough): the hub never closed, a read's audit row still queued was lost and the WAL was left. The SDK
    read stdin in a worker thread that a cancellation waited for, until the client's next line."""
    db = tmp_path / "tb.db"
    command = [sys.executable, "-m", "toolbridge", "mcp", "-c", str(EXAMPLE), "--database", f"sqlite:///{db}"]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    call = {"name": "util.calculate", "arguments": {"expression": "6*7"}}
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call},
    ]
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
        proc.stdin.flush()  # stdin stays open, as a client's does until it stops the server
        answers = [json.loads(proc.stdout.readline() or "null") for _ in range(2)]  # bounded by the kill
        assert answers[1]["id"] == 2 and answers[1]["result"]["content"][0]["text"] == "42.0"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=patience(30)) == 0
    finally:
        _ensure_stopped(proc)
        if proc.stdin is not None:
            proc.stdin.close()
    wal = db.with_name("tb.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert _audited_tools(db) == ["util.calculate"]
