"""The durable event log: every event, inbound or internal, one row with a stable id.

:meth:`EventLog.append` records an event, its delivery id (for deduplication, kept ``dedupe`` seconds) and
the outbound deliveries it causes in **one transaction**: once it returns, the event and the work it
implies survive ``kill -9``. A delivery id seen before is answered as a duplicate with the first event.

Readers page by ``seq`` (the cursor). On PostgreSQL, sequence numbers are handed out before commit, so a
row with a lower seq can become visible after a higher one; :meth:`EventLog.after` therefore stops at a gap
younger than ``settle`` seconds (an in-flight insert) and reads past an older gap (a rolled-back insert).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.events._group import GroupCommit, Recorded, delivery_row, event_of, record_in
from toolbridge.events._model import Event, EventFilter, NewEvent
from toolbridge.events._tables import event_dedupe, event_deliveries, events
from toolbridge.storage import Database

__all__ = ["EventLog", "Recorded"]

Fanout = Callable[[Event], Sequence[tuple[str, str]]]
"""An event → the (subscription, target) pairs it must be delivered to."""


_READ = sa.select(events)
_READ_HEADS = sa.select(*(c for c in events.c if c.name != "payload"), sa.null().label("payload"))


class EventLog:
    def __init__(
        self,
        database: Database,
        *,
        retention: float = 7 * 86400.0,
        dedupe: float = 3 * 86400.0,
        settle: float = 2.0,
        clock: Callable[[], float] = time.time,
        fanout: Fanout | None = None,
    ) -> None:
        self._db = database
        self.database = database
        self.retention = retention
        self.dedupe = dedupe
        self._settle = settle
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
            batch = await self._read(cursor, max(limit, 100), payloads)
            if not batch:
                break
            for event in batch:
                cursor = event.seq
                if match is None or match.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
        return found, cursor

    async def _read(self, cursor: int, limit: int, payloads: bool = True) -> list[Event]:
        query = _READ if payloads else _READ_HEADS
        query = query.where(events.c.seq > cursor).order_by(events.c.seq).limit(limit)
        async with self._db.transaction() as conn:
            rows = [event_of(r) for r in (await conn.execute(query)).mappings().all()]
        if self._db.dialect != "postgresql":
            return rows  # SQLite commits one writer at a time: seqs become visible in order
        young = self.now() - dt.timedelta(seconds=self._settle)
        expected = cursor + 1
        for i, event in enumerate(rows):
            if event.seq != expected and event.time > young:
                return rows[:i]  # an insert with a lower seq may still commit
            expected = event.seq + 1
        return rows

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
        async with self._db.transaction() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0)))).scalar_one()
            )

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
