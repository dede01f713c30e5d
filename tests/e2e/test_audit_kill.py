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


async def test_a_write_answered_just_before_kill_9_keeps_its_audit_row(
    database_url: str, tmp_path: Path
) -> None:
    answered: list[str] = []
    for n in range(ROUNDS):  # each round: a fresh process, one write, SIGKILL as soon as it is answered
        port = free_port()
        proc = serve(tmp_path, database_url, port)
        try:
            key = _read_key(proc)
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base)
            with httpx2.Client(base_url=base, trust_env=False) as http:
                reply = http.post(
                    "/v1/tools/notes.add/call",
                    json={"arguments": {"text": f"note {n}"}},
                    headers={"Authorization": f"Bearer {key}"},
                )
            os.killpg(proc.pid, signal.SIGKILL)
            assert reply.status_code == 200, reply.text
            answered.append(reply.json()["request_id"])
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    async with Database(database_url) as db:
        log = AuditLog(db)
        rows = await log.tail(1000, tool="notes.add")
        assert (await log.verify()).ok
    written = {r.entry.request_id: r.entry.outcome for r in rows}
    assert {rid: written.get(rid) for rid in answered} == dict.fromkeys(answered, "ok")
