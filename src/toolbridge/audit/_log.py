"""The audit log: appended in batches by one background task, verified end to end on demand.

Calls hand their entry to :meth:`AuditLog.record` and go on; a writer task appends queued entries in one
transaction per batch. The chain head row is locked by the first statement of that transaction
(``UPDATE … RETURNING``), so writers in several processes or replicas take turns and the chain stays
linear. :meth:`flush` waits until everything recorded so far is durable; closing the log flushes.

On SQLite the writer is a thread with a plain ``sqlite3`` connection (``_sqlite``), so the event loop
serving calls spends nothing on SQLAlchemy and aiosqlite round trips; on PostgreSQL it is a task on
the loop, writing through the async engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import sqlalchemy as sa
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.audit._chain import GENESIS, AuditEntry, AuditRecord, chain_hash
from toolbridge.audit._metrics import CallMetrics
from toolbridge.audit._sqlite import WRITES, SqliteWriter
from toolbridge.errors import StorageError
from toolbridge.resilience._retry import retry
from toolbridge.storage import Database, audit_events, audit_head

__all__ = ["AuditLog", "Verification"]

logger = logging.getLogger("toolbridge.audit")
_BATCH = 256


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


class AuditLog:
    def __init__(self, database: Database, *, queue_size: int = 10_000, linger: float = 0.005) -> None:
        self._db = database
        self._queue_size = queue_size
        self._linger = linger
        self._send: MemoryObjectSendStream[AuditEntry | anyio.Event] | None = None
        self._tg: TaskGroup | None = None
        self._thread: SqliteWriter | None = None
        self.metrics = CallMetrics()
        """Every entry recorded, counted (``GET /v1/metrics`` renders them for Prometheus)."""

    async def __aenter__(self) -> AuditLog:
        path = _sqlite_file(self._db)
        if path is not None:
            writer = SqliteWriter(path, queue_size=self._queue_size, linger=self._linger, batch=_BATCH)
            await writer.start()
            self._thread = writer
            return self
        send, receive = anyio.create_memory_object_stream[AuditEntry | anyio.Event](self._queue_size)
        self._send = send
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._writer, receive)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            thread, self._thread = self._thread, None
            await thread.aclose()  # writes what is queued, then ends
            return
        if self._send is None or self._tg is None:
            return
        send, tg = self._send, self._tg
        self._send = self._tg = None
        await send.aclose()  # the writer drains what is queued, then ends
        await tg.__aexit__(None, None, None)

    async def record(self, entry: AuditEntry) -> None:
        """Queue ``entry``; waits only when the queue is full (back-pressure, never loss)."""
        self.metrics.observe(entry)
        if self._thread is not None:
            await self._thread.put(entry)
            return
        if self._send is None:
            await self._append([entry])
            return
        try:
            self._send.send_nowait(entry)  # no checkpoint: a call cancelled now still leaves its row
        except anyio.WouldBlock:
            with anyio.CancelScope(shield=True):  # a cancelled call waits for room rather than lose its row
                await self._send.send(entry)

    async def record_durably(self, entry: AuditEntry) -> None:
        """Queue ``entry`` and return once it is in the database (a write's answer waits for its row, so
        a process killed after answering has not lost the record of what it answered). Should the
        database not take it within the flush's bound, this logs so and returns: the caller's answer
        goes out all the same, since its effect has happened."""
        await self.record(entry)
        try:
            await self.flush()
        except TimeoutError:
            logger.warning("audit row of request %s not durable yet; answering anyway", entry.request_id)

    async def flush(self) -> None:
        """Return once every entry recorded before this call is in the database."""
        if self._thread is not None:
            with anyio.fail_after(30):
                await self._thread.flush()
            return
        if self._send is None:
            return
        done = anyio.Event()
        await self._send.send(done)
        with anyio.fail_after(30):
            await done.wait()

    async def _writer(self, receive: MemoryObjectReceiveStream[AuditEntry | anyio.Event]) -> None:
        async with receive:
            async for first in receive:
                batch: list[AuditEntry | anyio.Event] = [first]
                if not isinstance(first, anyio.Event):
                    await self._linger_for_more(receive, batch)
                while len(batch) < _BATCH:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._write_batch(batch)

    async def _linger_for_more(
        self,
        receive: MemoryObjectReceiveStream[AuditEntry | anyio.Event],
        batch: list[AuditEntry | anyio.Event],
    ) -> None:
        """Wait up to ``linger`` for more entries, so calls arriving one at a time share a transaction."""
        with anyio.move_on_after(self._linger):
            while len(batch) < _BATCH and not isinstance(batch[-1], anyio.Event):
                try:
                    batch.append(await receive.receive())
                except anyio.EndOfStream:
                    return

    async def _write_batch(self, batch: list[AuditEntry | anyio.Event]) -> None:
        entries = [item for item in batch if isinstance(item, AuditEntry)]
        what = f"the audit write of {len(entries)} entries"
        try:
            await retry(
                lambda: self._append(entries), on=(StorageError,), backoff=WRITES, what=what, logger=logger
            )
        except StorageError:
            logger.exception("%s failed %d times; those entries are lost", what, WRITES.attempts)
        for item in batch:
            if isinstance(item, anyio.Event):
                item.set()

    async def _append(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        async with self._db.transaction() as conn:
            seq, prev = await _lock_head(conn, len(entries))
            rows = []
            for entry in entries:
                seq += 1
                digest = chain_hash(seq, entry, prev)
                rows.append(_row(AuditRecord(seq, entry, prev, digest)))
                prev = digest
            await conn.execute(audit_events.insert(), rows)
            await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(hash=prev))

    async def tail(
        self,
        limit: int = 20,
        *,
        tool: str | None = None,
        principal: str | None = None,
        request_id: str | None = None,
        outcome: str | None = None,
        before: int | None = None,
    ) -> list[AuditRecord]:
        """The newest ``limit`` records, oldest first, including every entry this process recorded before
        the call (read-your-writes: the queued ones are written first). ``request_id``: the rows of one
        request (a capability call and each provider it tried); ``outcome``: ``ok``, ``error`` or
        ``denied`` only; ``before``: only rows whose ``seq`` is lower (the next page of older rows)."""
        await self.flush()
        query = sa.select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit)
        if before is not None:
            query = query.where(audit_events.c.seq < before)
        if outcome:
            query = query.where(audit_events.c.outcome == outcome)
        if tool:
            query = query.where(audit_events.c.tool == tool)
        if principal:
            query = query.where(audit_events.c.principal == principal)
        if request_id:
            query = query.where(audit_events.c.request_id == request_id)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(r) for r in reversed(rows)]

    async def verify(self, *, chunk: int = 2000) -> Verification:
        """Recompute the chain up to its head as read first; report the first row whose hash or link does
        not hold. Servers may append while this runs: their rows lie past that head, for the next run (a
        head read after the rows could name rows appended since, and look like rows deleted from the end)."""
        async with self._db.transaction() as conn:
            head = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).mappings().one()
        end, prev, checked = int(head["seq"]), GENESIS, 0
        while checked < end:
            query = (
                sa.select(audit_events)
                .where(audit_events.c.seq > checked, audit_events.c.seq <= end)
                .order_by(audit_events.c.seq)
                .limit(chunk)
            )
            async with self._db.transaction() as conn:
                rows = (await conn.execute(query)).mappings().all()
            for row in rows:
                record = _record(row)
                bad = _check(record, prev, checked + 1)
                if bad:
                    return Verification(False, checked, record.seq, bad)
                prev, checked = record.hash, checked + 1
            if len(rows) < chunk:
                break
        if end != checked or head["hash"] != prev:
            return Verification(
                False,
                checked,
                None,
                f"the chain ends at row {checked} but the head says {end}: rows were deleted from the end",
            )
        return Verification(True, checked)


def _sqlite_file(database: Database) -> str | None:
    """The file of an open SQLite database (None for PostgreSQL, or a database not open yet)."""
    if database.dialect != "sqlite":
        return None
    try:
        url = database.engine.url
    except RuntimeError:
        return None
    return url.database or None


async def _lock_head(conn: AsyncConnection, count: int) -> tuple[int, str]:
    """Reserve ``count`` sequence numbers; the row lock serializes writers across processes."""
    stmt = (
        audit_head.update()
        .where(audit_head.c.id == 1)
        .values(seq=audit_head.c.seq + count)
        .returning(audit_head.c.seq, audit_head.c.hash)
    )
    new_seq, prev = (await conn.execute(stmt)).one()
    return int(new_seq) - count, str(prev)


def _check(record: AuditRecord, prev: str, expected_seq: int) -> str | None:
    if record.seq != expected_seq:
        return f"row {expected_seq} is missing (found {record.seq} next)"
    if record.prev_hash != prev:
        return f"row {record.seq} does not link to the row before it"
    if chain_hash(record.seq, record.entry, record.prev_hash) != record.hash:
        return f"row {record.seq} was modified after it was written"
    return None


def _row(record: AuditRecord) -> dict[str, object]:
    e = record.entry
    return {
        "seq": record.seq,
        "ts": e.ts,
        "request_id": e.request_id,
        "principal": e.principal,
        "tool": e.tool,
        "args_digest": e.args_digest,
        "outcome": e.outcome,
        "error_code": e.error_code,
        "duration_ms": round(e.duration_ms, 3),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _record(row: sa.RowMapping) -> AuditRecord:
    ts: dt.datetime = row["ts"]
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    entry = AuditEntry(
        ts=ts,
        request_id=row["request_id"],
        principal=row["principal"],
        tool=row["tool"],
        args_digest=row["args_digest"],
        outcome=row["outcome"],
        error_code=row["error_code"],
        duration_ms=float(row["duration_ms"]),
    )
    return AuditRecord(int(row["seq"]), entry, row["prev_hash"], row["hash"])
