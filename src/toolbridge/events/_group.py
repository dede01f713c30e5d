"""Group commit for the event log: concurrent appends share one transaction.

Every :meth:`EventLog.append` queues its event and waits for a writer slot; whoever holds a slot takes
everything queued so far (if its own event was not taken yet) and writes it — delivery-id claims, event
rows and planned deliveries, one multi-row statement each — in one transaction, and tells every waiter its
outcome. While batches commit, the next ones gather, so a busy receiver makes a handful of round trips per
batch instead of per delivery, and an idle one still writes a lone event at once. An append answers only
after the transaction holding its event committed (the durability of :meth:`EventLog.append` is
unchanged).

On PostgreSQL several batches commit at once (``WRITERS``): a commit waits on the disk, and one batch at a
time capped throughput at (batch size ÷ commit time) however idle the CPU. Two batches claiming the same
delivery id are ordered by the unique key (the second's claim waits for the first's commit and finds it).
SQLite takes one writer at a time anyway: one slot there.

A batch the database refuses is written again one event per transaction, so a bad event fails alone; a
batch that cannot reach the database fails as a whole (one by one, each would fail the same way).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import StorageError
from toolbridge.events._model import Event, NewEvent
from toolbridge.events._tables import event_dedupe, event_deliveries, events

if TYPE_CHECKING:
    from toolbridge.events._log import EventLog

__all__ = ["GAP_FENCE", "GroupCommit", "Recorded", "delivery_row", "event_of", "record_in"]

MAX_BATCH = 256
"""Events per transaction at most (the rest wait for the next one)."""
WRITERS = 4
"""Batches committing at once on PostgreSQL (each holds a pooled connection while it does)."""
GAP_FENCE = 0x7B_1D_6F
"""PostgreSQL advisory lock id: every append holds it shared from before its seqs are handed out until
it commits; a reader at a gap in the seqs takes it alone to tell an append in flight from a rolled-back
one (``_log.py``)."""
_HOLD_FENCE = sa.select(sa.func.pg_advisory_xact_lock_shared(GAP_FENCE))


@dataclass(eq=False, slots=True)
class _Pending:
    new: NewEvent
    taken: bool = False
    """In a batch being written (by this append's task or another's)."""
    finished: anyio.Event = field(default_factory=anyio.Event)
    recorded: Recorded | None = None
    error: StorageError | None = None
    first: _Pending | None = None
    """An earlier event of the same batch with the same delivery id: this one is its duplicate."""
    row: dict[str, Any] = field(default_factory=dict)


class GroupCommit:
    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._queue: list[_Pending] = []
        self._slots: anyio.Semaphore | None = None

    async def append(self, new: NewEvent) -> Recorded:
        item = _Pending(new)
        self._queue.append(item)
        if self._slots is None:
            self._slots = anyio.Semaphore(WRITERS if self._log.database.dialect == "postgresql" else 1)
        if not item.taken:
            async with self._slots:
                while not item.taken:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    for taken in batch:
                        taken.taken = True
                    with anyio.CancelScope(shield=True):  # the others of the batch wait on this write
                        await self._write_or_fail(batch)
        await item.finished.wait()  # written by this task or by the one that took it
        if item.error is not None:
            raise item.error
        assert item.recorded is not None
        return item.recorded

    async def _write_or_fail(self, batch: list[_Pending]) -> None:
        """:meth:`_write`; on an unexpected error, the batch's other appends fail too (none waits forever)."""
        try:
            await self._write(batch)
        except BaseException as exc:  # whatever ends the write, the batch's waiters are told; re-raised
            failed = StorageError(f"the event log write failed: {exc.__class__.__name__}")
            for item in batch:
                if not item.finished.is_set():
                    _finish(item, error=failed)
            raise

    async def _write(self, batch: list[_Pending]) -> None:
        try:
            async with self._log.database.transaction() as conn:
                await _write_batch(conn, self._log, batch)
        except StorageError as exc:
            if len(batch) == 1 or not exc.refused_statement:  # unreachable: each alone would fail too
                for item in batch:
                    _finish(item, error=exc)
                return
            for item in batch:  # one bad event must not fail the others: each in its own transaction
                await self._retry_one(item)
            return
        for item in batch:
            item.finished.set()
        self._wake(batch)

    async def _retry_one(self, item: _Pending) -> None:
        try:
            async with self._log.database.transaction() as conn:
                await _write_batch(conn, self._log, [item])
        except StorageError as exc:
            _finish(item, error=exc)
            return
        item.finished.set()
        self._wake([item])

    def _wake(self, batch: Sequence[_Pending]) -> None:
        for item in batch:
            if item.recorded is not None and not item.recorded.duplicate:
                self._log.wake(item.recorded.event)


_INSERT_EVENTS = events.insert().returning(events.c.id, events.c.seq)
_CLAIM = {  # built once: SQLAlchemy memoizes a statement's cache key on the statement object
    name: dialect.insert(event_dedupe)
    .on_conflict_do_nothing()
    .returning(event_dedupe.c.source, event_dedupe.c.delivery_id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _finish(item: _Pending, *, error: StorageError) -> None:
    item.error = error
    item.finished.set()


async def _write_batch(conn: AsyncConnection, log: EventLog, batch: Sequence[_Pending]) -> None:
    """Claims, event rows and deliveries of ``batch`` in ``conn``'s transaction; sets each ``recorded``."""
    now = log.now()
    fresh = await _claim(conn, log, batch, now)
    rows = [_row(item, now) for item in fresh]
    if rows:
        if conn.dialect.name == "postgresql":
            await conn.execute(_HOLD_FENCE)
        seqs = {r.id: r.seq for r in await conn.execute(_INSERT_EVENTS, rows)}
        for item in fresh:
            item.recorded = Recorded(event_of({**item.row, "seq": seqs[item.row["id"]]}))
    planned = [
        delivery_row(item.recorded.event, pair, now)
        for item in fresh
        if item.recorded is not None and log.fanout is not None
        for pair in log.fanout(item.recorded.event)
    ]
    if planned:
        await conn.execute(event_deliveries.insert(), planned)
    for item in batch:
        if item.first is not None:
            assert item.first.recorded is not None
            item.recorded = Recorded(item.first.recorded.event, duplicate=True)


async def _claim(
    conn: AsyncConnection, log: EventLog, batch: Sequence[_Pending], now: dt.datetime
) -> list[_Pending]:
    """Claim the batch's delivery ids; returns the events to record (the others are duplicates, found)."""
    seen: dict[tuple[str, str], _Pending] = {}
    keyed: list[_Pending] = []
    for item in batch:
        item.row, item.first, item.recorded = {"id": "evt_" + secrets.token_hex(12)}, None, None
        key = _key(item.new)
        if key is None:
            continue
        if key in seen:
            item.first = seen[key]
        else:
            seen[key] = item
            keyed.append(item)
    claimed: set[tuple[str, str]] = set()
    if keyed:
        values = [
            {
                "source": k[0],
                "delivery_id": k[1],
                "event_id": item.row["id"],
                "expires_at": now + dt.timedelta(seconds=log.dedupe),
            }
            for item in keyed
            if (k := _key(item.new)) is not None
        ]
        returning = _CLAIM["postgresql" if log.database.dialect == "postgresql" else "sqlite"]
        claimed = {(r.source, r.delivery_id) for r in await conn.execute(returning, values)}
    for item in keyed:
        key = _key(item.new)
        if key is not None and key not in claimed:
            first = await _first(conn, key, item.new, now)
            item.recorded = Recorded(first, duplicate=True)
    return [item for item in batch if item.first is None and item.recorded is None]


def _key(new: NewEvent) -> tuple[str, str] | None:
    if new.delivery_id is None:
        return None
    return new.source[:64], str(new.delivery_id)[:255]


async def _first(conn: AsyncConnection, key: tuple[str, str], new: NewEvent, now: dt.datetime) -> Event:
    first_id = (
        await conn.execute(
            sa.select(event_dedupe.c.event_id).where(
                event_dedupe.c.source == key[0], event_dedupe.c.delivery_id == key[1]
            )
        )
    ).scalar_one()
    row = (await conn.execute(sa.select(events).where(events.c.id == first_id))).mappings().first()
    if row is None:  # the event aged out before its delivery id: report the id alone
        return Event(0, first_id, new.source, new.type, new.subject, now, None)
    return event_of(row)


def _row(item: _Pending, now: dt.datetime) -> dict[str, Any]:
    new = item.new
    item.row = {
        "id": item.row["id"],
        "source": new.source[:64],
        "type": new.type[:128],
        "subject": new.subject[:255] if new.subject else None,
        "time": now,
        "payload": new.payload if new.payload is not None else {},
        "delivery_id": new.delivery_id,
        "stream": new.stream,
        "stream_seq": new.stream_seq,
    }
    return item.row


def delivery_row(event: Event, pair: tuple[str, str], now: dt.datetime) -> dict[str, Any]:
    """A queued outbound delivery of ``event`` to a (subscription, target) pair."""
    subscription, target = pair
    return {
        "id": "msg_" + secrets.token_hex(12),
        "event_seq": event.seq,
        "subscription": subscription,
        "target": target,
        "state": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True, slots=True)
class Recorded:
    event: Event
    duplicate: bool = False


async def record_in(conn: AsyncConnection, log: EventLog, new: NewEvent) -> Recorded:
    """One event in the caller's transaction (what a batch of one writes)."""
    item = _Pending(new)
    await _write_batch(conn, log, [item])
    assert item.recorded is not None
    return item.recorded


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def event_of(row: Mapping[str, Any] | sa.RowMapping) -> Event:
    return Event(
        seq=int(row["seq"]),
        id=row["id"],
        source=row["source"],
        type=row["type"],
        subject=row["subject"],
        time=_aware(row["time"]),
        payload=row["payload"],
    )
