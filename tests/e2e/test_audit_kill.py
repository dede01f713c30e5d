"""A write's audit row is in the database before its answer leaves: `toolbridge serve` killed with SIGKILL
the moment the agent has read the answer still shows the row, on SQLite and on PostgreSQL.

Audit rows are written in batches by a background writer (a few ms of linger); before writes waited for
their row, a process killed right after answering lost the record of a write it had applied and answered.
Reads still answer without waiting (their rows may be lost with the process, nothing having changed).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx2
import pytest

from tests.e2e.test_serve import EXAMPLE, TOOLBRIDGE, _read_key, _wait_healthy, free_port
from toolbridge.audit import AuditLog
from toolbridge.storage import Database

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
ROUNDS = 3


def serve(cwd: Path, database_url: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *TOOLBRIDGE,
            *("serve", "-c", str(EXAMPLE), "--database", database_url, "--port", str(port)),
            *("--create-agent", "assistant", "--no-worker"),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        start_new_session=True,
    )


def killed_after(tmp_path: Path, database_url: str, calls: int) -> list[httpx2.Response]:
    """Per round, a fresh ``toolbridge serve``: ``calls`` posts of one note (with one idempotency key), then
    SIGKILL as soon as the last is answered; the last answer of each round."""
    answers = []
    for n in range(ROUNDS):
        port = free_port()
        proc = serve(tmp_path, database_url, port)
        try:
            key = _read_key(proc)
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base)
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"note-{n}"}
            with httpx2.Client(base_url=base, trust_env=False, headers=headers) as http:
                for _ in range(calls):
                    reply = http.post("/v1/tools/notes.add/call", json={"arguments": {"text": f"note {n}"}})
            os.killpg(proc.pid, signal.SIGKILL)
            assert reply.status_code == 200, reply.text
            answers.append(reply)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    return answers


async def outcomes(database_url: str) -> dict[str, str]:
    """Each audit row's request id → outcome (and the chain verified)."""
    async with Database(database_url) as db:
        log = AuditLog(db)
        rows = await log.tail(1000, tool="notes.add")
        assert (await log.verify()).ok
    return {r.entry.request_id: r.entry.outcome for r in rows}


async def test_a_write_answered_just_before_kill_9_keeps_its_audit_row(
    database_url: str, tmp_path: Path
) -> None:
    answered = [reply.json()["request_id"] for reply in killed_after(tmp_path, database_url, calls=1)]
    written = await outcomes(database_url)
    assert {rid: written.get(rid) for rid in answered} == dict.fromkeys(answered, "ok")


async def test_a_replayed_write_answered_just_before_kill_9_keeps_its_audit_row(
    database_url: str, tmp_path: Path
) -> None:
    """A replay (same idempotency key) of a write answers from the stored outcome; its row was queued
    without waiting, so a kill right after the answer lost it (found by an outside chaos check)."""
    replies = killed_after(tmp_path, database_url, calls=2)
    assert all(reply.headers["Idempotent-Replayed"] == "true" for reply in replies)
    replays = [reply.json()["request_id"] for reply in replies]
    written = await outcomes(database_url)
    assert {rid: written.get(rid) for rid in replays} == dict.fromkeys(replays, "replayed")
