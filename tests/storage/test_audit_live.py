"""``audit verify`` while servers keep appending: an append is not a deletion.

The verifier reads the chain in chunks, then the head row. Another process's append that commits after
the last chunk was read and before the head is (one round trip on a live server) makes the head name rows
the verifier did not read. A SQLAlchemy hook on the verifier's engine (the driver boundary) commits that
append from a second ``Database`` (another process) right before the head is read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.util import await_only

from toolbridge.audit import AuditEntry, AuditLog
from toolbridge.audit._log import Verification
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


def entry(n: int) -> AuditEntry:
    return AuditEntry(dt.datetime.now(dt.UTC), f"r{n}", "agent:a", "t.x", "0" * 64, "ok", None, 1.0)


def append_before_read(other: Database, k: int, appended: list[int]) -> Callable[..., None]:
    """A hook that commits another process's append right before the ``k``-th read of the audit tables."""
    reads: list[str] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit_" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)
            if len(reads) == k + 1:  # another process's server: its own database, not queued
                await_only(AuditLog(other).record(entry(10 + k)))
                appended.append(k)

    return hook


async def test_an_append_committed_while_verify_runs_is_not_reported_as_tampering(database_url: str) -> None:
    async with Database(database_url) as db, Database(database_url) as other:
        for n in range(3):
            await AuditLog(db).record(entry(n))
        appended: list[int] = []
        for k in range(6):  # the append commits right before verify's k-th read (chunks of 2 rows, the head)
            hook = append_before_read(other, k, appended)
            sa.event.listen(db.engine.sync_engine, "before_cursor_execute", hook)
            try:
                result = await AuditLog(db).verify(chunk=2)
            finally:
                sa.event.remove(db.engine.sync_engine, "before_cursor_execute", hook)
            assert result.ok, (k, result.reason)
        assert len(appended) >= 5  # every read of a run that checks 3 to 8 rows in chunks of 2, and the head
        assert (await AuditLog(db).verify()) == Verification(True, 3 + len(appended))
