"""The SQLite audit writer: a thread of its own with a plain ``sqlite3`` connection, off the event loop.

Through the async engine every statement was a round trip to aiosqlite's thread, SQLAlchemy compiled
each one on the event loop, and every queued entry woke the writer task: together about a sixth of the
CPU of a server proxying small calls, taken from the calls it serves. Here a call only puts its entry on
a thread-safe queue; the thread waits for a first entry, lingers for more, then writes the batch — lock
the head row, hash, insert, move the head, commit — with statements written out once.

The transaction is the same as on the async path: ``BEGIN IMMEDIATE`` takes SQLite's write lock before
the head row is read, so writers in several processes take turns (each waits up to the busy timeout)
and the chain stays linear.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence

import anyio

from toolbridge.audit._chain import AuditEntry, chain_hash
from toolbridge.errors import StorageError
from toolbridge.resilience._retry import Backoff, retry_sync

__all__ = ["SqliteWriter"]

logger = logging.getLogger("toolbridge.audit")

_BUSY_TIMEOUT_S = 30.0
WRITES = Backoff(attempts=3, base=0.2, max_delay=1.0)
"""How an audit batch that failed to write is retried (both writers)."""
_LOCK_HEAD = "UPDATE audit_head SET seq = seq + ? WHERE id = 1 RETURNING seq, hash"
_INSERT = (
    "INSERT INTO audit_events (seq, ts, request_id, principal, tool, args_digest, outcome, error_code, "
    "duration_ms, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_HEAD = "UPDATE audit_head SET hash = ? WHERE id = 1"


class _Stop:
    """Queued by :meth:`SqliteWriter.aclose`: write what is before it, then end."""


_Item = AuditEntry | threading.Event | _Stop


class SqliteWriter:
    """Appends queued entries to the SQLite file at ``path`` from its own thread, in batches.

    ``put`` may be called from the event loop at any rate; ``flush`` returns once everything put before
    it is committed; ``aclose`` writes what is queued, then ends the thread and closes the connection.
    """

    def __init__(self, path: str, *, queue_size: int, linger: float, batch: int) -> None:
        self._path = path
        self._linger = linger
        self._batch = batch
        self._queue: queue.Queue[_Item] = queue.Queue(queue_size)
        self._hurry = threading.Event()  # set by flush and close: stop lingering
        self._full = anyio.CapacityLimiter(1)  # a full queue ties up one worker thread, not one per call
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="toolbridge-audit", daemon=True)

    async def start(self) -> None:
        try:
            self._conn = await anyio.to_thread.run_sync(_connect, self._path)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        self._thread.start()

    async def put(self, entry: AuditEntry) -> None:
        """Queue ``entry``; waits only when the queue is full (back-pressure, never loss)."""
        try:
            self._queue.put_nowait(entry)  # no checkpoint: a call cancelled now still leaves its row
        except queue.Full:
            self._hurry.set()  # a full queue is reason enough to write now
            with anyio.CancelScope(shield=True):  # a cancelled call waits for room rather than lose its row
                await anyio.to_thread.run_sync(self._queue.put, entry, limiter=self._full)

    async def flush(self) -> None:
        done = threading.Event()
        await self._put_marker(done)
        # Waits a second at a time, so a thread left waiting by a cancelled flush ends soon after.
        while not await anyio.to_thread.run_sync(done.wait, 1.0, abandon_on_cancel=True):
            pass

    async def aclose(self) -> None:
        await self._put_marker(_Stop())
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._thread.join)

    async def _put_marker(self, marker: threading.Event | _Stop) -> None:
        try:
            self._queue.put_nowait(marker)
        except queue.Full:
            self._hurry.set()  # the writer must drain before there is room for the marker
            await anyio.to_thread.run_sync(self._queue.put, marker, limiter=self._full)
        self._hurry.set()

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        try:
            while True:
                batch = [self._queue.get()]
                if isinstance(batch[0], AuditEntry):
                    self._hurry.wait(self._linger)  # calls arriving one at a time share a transaction
                self._hurry.clear()  # before draining: a marker queued after this sets it again
                while len(batch) < self._batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._write(conn, batch)
                if any(isinstance(item, _Stop) for item in batch):
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        entries = [item for item in batch if isinstance(item, AuditEntry)]
        what = f"the audit write of {len(entries)} entries"
        try:
            if entries:
                retry_sync(
                    lambda: append(conn, entries), on=(Exception,), backoff=WRITES, what=what, logger=logger
                )
        except Exception:  # the thread must outlive any one batch, or flush and close would hang
            logger.exception("%s failed %d times; those entries are lost", what, WRITES.attempts)
        for item in batch:
            if isinstance(item, threading.Event):
                item.set()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous=NORMAL")  # as the engine's connections (WAL is set on the file)
    except BaseException:  # any failure, an interrupt too: the connection is not handed out, so close it
        conn.close()
        raise
    return conn


def append(conn: sqlite3.Connection, entries: Sequence[AuditEntry]) -> None:
    """Write ``entries`` as the next rows of the chain, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        new_seq, prev = conn.execute(_LOCK_HEAD, (len(entries),)).fetchone()
        seq = int(new_seq) - len(entries)
        rows = []
        for entry in entries:
            seq += 1
            digest = chain_hash(seq, entry, prev)
            rows.append(_row(seq, entry, prev, digest))
            prev = digest
        conn.executemany(_INSERT, rows)
        conn.execute(_MOVE_HEAD, (prev,))
        conn.execute("COMMIT")
    except BaseException:  # any failure, an interrupt too, must not leave the chain's head locked
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def storage_error(exc: sqlite3.Error) -> StorageError:
    return StorageError(
        f"database error: {exc.__class__.__name__}: {exc}",
        hint="the database may be down or locked; retry shortly",
    )


def _row(seq: int, e: AuditEntry, prev: str, digest: str) -> tuple[object, ...]:
    # The text SQLAlchemy's SQLite DateTime stores (UTC, no offset), so both paths read back alike.
    ts = e.ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (
        seq,
        ts,
        e.request_id,
        e.principal,
        e.tool,
        e.args_digest,
        e.outcome,
        e.error_code,
        round(e.duration_ms, 3),
        prev,
        digest,
    )
