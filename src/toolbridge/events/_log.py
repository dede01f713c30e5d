"""The durable event log: every event, inbound or internal, one row with a stable id.

:meth:`EventLog.append` records an event, its delivery id (for deduplication, kept ``dedupe`` seconds) and
the outbound deliveries it causes in **one transaction**: once it returns, the event and the work it
implies survive ``kill -9``. A delivery id seen before is answered as a duplicate with the first event.

Readers page by ``seq`` (the cursor). On PostgreSQL, sequence numbers are handed out before commit, so a
row with a lower seq can become visible after a higher one, and a rolled-back append leaves a seq unused
for good. A reader must not pass the first kind of gap (the event would appear behind every cursor) and
must pass the second. The **gap fence** tells them apart without a clock: every append holds a shared
advisory lock (:data:`GAP_FENCE`) from before its seqs are handed out until it commits (``_group.py``); a
reader that meets a gap answers the events before it; meeting the same gap again (the append in flight
had time to commit, but the seq is still missing), it takes the lock exclusively, which waits for the
appends in flight (and holds new ones back for the moment it takes to read again), and reads again: a gap
left then is for good. The highest seq read so, :attr:`EventLog.final`, spares this process's readers the
lock for gaps below it. Readers poll (``wait``, the announcer), so a rolled-back seq delays them by one
poll, and an append in flight costs no lock at all when it commits before the next.
SQLite commits one writer at a time, so seqs become visible in order there.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import StorageError
from toolbridge.events._group import GAP_FENCE, GroupCommit, Recorded, delivery_row, event_of, record_in
from toolbridge.events._model import Event, EventFilter, NewEvent
from toolbridge.events._tables import event_dedupe, event_deliveries, events
from toolbridge.storage import Database

__all__ = ["EventLog", "Recorded"]

Fanout = Callable[[Event], Sequence[tuple[str, str]]]
"""An event → the (subscription, target) pairs it must be delivered to."""


_READ = sa.select(events)
_HEAD = sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))
_READ_HEADS = sa.select(*(c for c in events.c if c.name != "payload"), sa.null().label("payload"))


_GAPS_KEPT = 4096


class _FenceBusy(Exception):
    """The gap fence was not free within :attr:`EventLog.fence_wait`."""


class EventLog:
    def __init__(
        self,
        database: Database,
        *,
        retention: float = 7 * 86400.0,
        dedupe: float = 3 * 86400.0,
        fence_wait: float = 5.0,
        clock: Callable[[], float] = time.time,
        fanout: Fanout | None = None,
    ) -> None:
        self._db = database
        self.database = database
        self.retention = retention
        self.dedupe = dedupe
        self.fence_wait = fence_wait
        """Seconds a reader at a gap waits for the appends in flight before it answers what precedes the
        gap (its caller reads again later)."""
        self.final = 0
        """PostgreSQL: every seq up to this one is committed or rolled back for good (module docstring)."""
        self._fencing = anyio.Lock()
        self._gaps: set[int] = set()
        """Seqs missing at a gap a reader of this process has seen once (and answered up to)."""
        self.clock = clock
        self.fanout = fanout
        self._changed = anyio.Event()
        self._group = GroupCommit(self)
        self.listeners: list[Callable[[Event], None]] = []
        """Called (synchronously, after commit) with every event this process recorded."""

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    async def append(self, new: NewEvent) -> Recorded:
        """Record ``new`` (or find the event its delivery id already recorded); concurrent appends share
        a transaction (``_group``), each answered once the transaction holding it committed."""
        return await self._group.append(new)

    async def append_in(self, conn: AsyncConnection, new: NewEvent) -> Recorded:
        """:meth:`append` inside the caller's transaction (the caller calls :meth:`wake` after commit)."""
        return await record_in(conn, self, new)

    async def replan(self, event: Event, planned: Sequence[tuple[str, str]]) -> list[str]:
        """Deliver ``event`` again to the (subscription, target) pairs: new deliveries, new ids."""
        async with self._db.transaction() as conn:
            return await self._plan(conn, event, self.now(), planned)

    async def _plan(
        self, conn: AsyncConnection, event: Event, now: dt.datetime, planned: Sequence[tuple[str, str]]
    ) -> list[str]:
        if not planned:
            return []
        rows = [delivery_row(event, pair, now) for pair in planned]
        await conn.execute(event_deliveries.insert(), rows)
        return [str(r["id"]) for r in rows]

    def wake(self, event: Event) -> None:
        """Tell waiters and listeners of this process about a committed event."""
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        for listener in list(self.listeners):
            listener(event)

    async def get(self, event_id: str) -> Event | None:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.id == event_id))).mappings().first()
        return event_of(row) if row is not None else None

    async def by_seq(self, seq: int) -> Event | None:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.seq == seq))).mappings().first()
        return event_of(row) if row is not None else None

    async def after(
        self, cursor: int, *, match: EventFilter | None = None, limit: int = 100, payloads: bool = True
    ) -> tuple[list[Event], int]:
        """Events after ``cursor`` that ``match`` (at most ``limit``), and the cursor to pass next; with
        ``payloads=False`` their payloads are not read (None; for a ``match`` that does not look)."""
        found: list[Event] = []
        while len(found) < limit:
            batch, whole = await self._read(cursor, max(limit, 100), payloads)
            for event in batch:
                cursor = event.seq
                if match is None or match.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
            if not batch or not whole:
                break  # the end of the log, or a gap to look at again on the next read
        return found, cursor

    async def _read(self, cursor: int, limit: int, payloads: bool = True) -> tuple[list[Event], bool]:
        """Up to ``limit`` events after ``cursor``, and False if they stop short at a gap."""
        query = _READ if payloads else _READ_HEADS
        query = query.where(events.c.seq > cursor).order_by(events.c.seq).limit(limit)
        async with self._db.transaction() as conn:
            rows = [event_of(r) for r in (await conn.execute(query)).mappings().all()]
        if self._gaps:
            self._gaps.difference_update(e.seq for e in rows)  # filled since
        if self._db.dialect != "postgresql" or (gap := self._open_gap(rows, cursor)) is None:
            return rows, True  # SQLite commits one writer at a time: seqs become visible in order
        missing = rows[gap - 1].seq + 1 if gap else cursor + 1
        if missing not in self._gaps:  # first seen: most likely an append about to commit
            if len(self._gaps) >= _GAPS_KEPT:
                self._gaps.clear()  # (gaps seen once by readers that moved on): seen once again
            self._gaps.add(missing)
            return rows[:gap], False
        async with self._fencing:  # this process's readers at a gap take the fence one at a time
            if self._open_gap(rows, cursor) is None:
                return rows, True  # another reader settled it meanwhile
            try:
                return await self._read_fenced(query), True
            except _FenceBusy:
                return rows[:gap], False  # appends still in flight: what precedes the gap, the rest later

    def _open_gap(self, rows: Sequence[Event], cursor: int) -> int | None:
        """The index of the first row after a gap that may still fill (one above :attr:`final`)."""
        expected = cursor + 1
        for i, event in enumerate(rows):
            if event.seq != expected and event.seq - 1 > self.final:
                return i
            expected = event.seq + 1
        return None

    async def _read_fenced(self, query: sa.Select[Any]) -> list[Event]:
        """``query`` once no append is in flight: every gap it leaves is for good."""
        async with self._fence() as conn:
            rows = [event_of(r) for r in (await conn.execute(query)).mappings().all()]
            top = (await conn.execute(_HEAD)).scalar_one()
        self._settled(top)
        return rows

    def _settled(self, top: int) -> None:
        self.final = max(self.final, top)
        self._gaps = {seq for seq in self._gaps if seq > self.final}

    @asynccontextmanager
    async def _fence(self) -> AsyncIterator[AsyncConnection]:
        """A transaction holding the gap fence alone: no append is in flight while it runs. Raises
        :class:`_FenceBusy` when the appends in flight keep it longer than :attr:`fence_wait`."""
        try:
            async with self._db.transaction() as conn:
                wait = max(1, round(self.fence_wait * 1000))
                await conn.execute(sa.text(f"SET LOCAL lock_timeout = {wait}"))
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(GAP_FENCE)))
                yield conn
        except StorageError as exc:
            if getattr(getattr(exc.__cause__, "orig", None), "sqlstate", None) == "55P03":  # lock_timeout
                raise _FenceBusy from exc
            raise

    async def wait(
        self, cursor: int, *, match: EventFilter | None = None, limit: int = 100, seconds: float = 0.0
    ) -> tuple[list[Event], int]:
        """:meth:`after`, waiting up to ``seconds`` for a first matching event."""
        found, cursor = await self.after(cursor, match=match, limit=limit)
        with anyio.move_on_after(seconds):
            while not found:
                changed = self._changed
                with anyio.move_on_after(1.0):  # another process may have recorded it
                    await changed.wait()
                found, cursor = await self.after(cursor, match=match, limit=limit)
        return found, cursor

    async def stream(
        self, conn: AsyncConnection, stream: str, after: int, limit: int
    ) -> list[tuple[int, Event]]:
        """Events of ``stream`` numbered after ``after`` (at most ``limit``), in ``conn``'s transaction:
        (stream number, event), in stream order. A stream is numbered by its one writer, so it has no gaps
        to wait for (see :class:`NewEvent`)."""
        query = (
            sa.select(events)
            .where(events.c.stream == stream, events.c.stream_seq > after)
            .order_by(events.c.stream_seq)
            .limit(limit)
        )
        rows = (await conn.execute(query)).mappings().all()
        return [(int(r["stream_seq"]), event_of(r)) for r in rows]

    async def head(self) -> int:
        """The newest seq: the cursor for "from now on". On PostgreSQL it is read under the gap fence, so
        no append below it is still in flight: an event committed after this call always has a higher seq
        (else a subscription started now would never see it). If the fence stays busy past
        :attr:`fence_wait`, the newest seq as it stands."""
        if self._db.dialect == "postgresql":
            try:
                async with self._fence() as conn:
                    top = int((await conn.execute(_HEAD)).scalar_one())
                self._settled(top)
                return top
            except _FenceBusy:
                pass
        async with self._db.transaction() as conn:
            return int((await conn.execute(_HEAD)).scalar_one())

    async def newest(self) -> int:
        """The newest seq as it stands (no fence: a cursor this log gave is never above it, but an append
        in flight may be), 0 when the log is empty."""
        async with self._db.transaction() as conn:
            return int((await conn.execute(_HEAD)).scalar_one())

    async def stream_head(self, conn: AsyncConnection, stream: str) -> int:
        """The newest number of ``stream`` (0: none), in ``conn``'s transaction."""
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.stream_seq), 0)).where(
            events.c.stream == stream
        )
        return int((await conn.execute(query)).scalar_one())

    async def tail(self, limit: int = 20, *, match: EventFilter | None = None) -> list[Event]:
        """The latest events (oldest first) that ``match``."""
        query = sa.select(events).order_by(events.c.seq.desc()).limit(limit if match is None else limit * 20)
        async with self._db.transaction() as conn:
            rows = [event_of(r) for r in (await conn.execute(query)).mappings().all()]
        kept = [e for e in rows if match is None or match.matches(e)][:limit]
        return kept[::-1]

    async def purge(self) -> int:
        """Delete events past retention and delivery ids past their dedupe horizon; returns events deleted."""
        now = self.now()
        async with self._db.transaction() as conn:
            await conn.execute(event_dedupe.delete().where(event_dedupe.c.expires_at < now))
            cutoff = now - dt.timedelta(seconds=self.retention)
            result = await conn.execute(events.delete().where(events.c.time < cutoff))
        return int(result.rowcount or 0)
