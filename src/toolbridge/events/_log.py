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
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.events._model import Event, EventFilter, NewEvent
from toolbridge.events._tables import event_dedupe, event_deliveries, events
from toolbridge.storage import Database

__all__ = ["EventLog", "Recorded"]

Fanout = Callable[[Event], Sequence[tuple[str, str]]]
"""An event → the (subscription, target) pairs it must be delivered to."""


@dataclass(frozen=True, slots=True)
class Recorded:
    event: Event
    duplicate: bool = False


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
        self.listeners: list[Callable[[Event], None]] = []
        """Called (synchronously, after commit) with every event this process recorded."""

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    async def append(self, new: NewEvent) -> Recorded:
        """Record ``new`` (or find the event its delivery id already recorded)."""
        async with self._db.transaction() as conn:
            recorded = await self.append_in(conn, new)
        if not recorded.duplicate:
            self.wake(recorded.event)
        return recorded

    async def append_in(self, conn: AsyncConnection, new: NewEvent) -> Recorded:
        """:meth:`append` inside the caller's transaction (the caller calls :meth:`wake` after commit)."""
        now = self.now()
        event_id = "evt_" + secrets.token_hex(12)
        if new.delivery_id is not None:
            first = await self._claim_delivery(conn, new, event_id, now)
            if first is not None:
                return Recorded(first, duplicate=True)
        row = {
            "id": event_id,
            "source": new.source[:64],
            "type": new.type[:128],
            "subject": new.subject[:255] if new.subject else None,
            "time": now,
            "payload": new.payload if new.payload is not None else {},
            "delivery_id": new.delivery_id,
        }
        seq = (await conn.execute(events.insert().values(**row).returning(events.c.seq))).scalar_one()
        event = _event({**row, "seq": seq})
        await self._plan(conn, event, now, self.fanout(event) if self.fanout is not None else ())
        return Recorded(event)

    async def _claim_delivery(
        self, conn: AsyncConnection, new: NewEvent, event_id: str, now: dt.datetime
    ) -> Event | None:
        """None when the delivery id is new (now claimed), else the event that first carried it."""
        values = {
            "source": new.source[:64],
            "delivery_id": str(new.delivery_id)[:255],
            "event_id": event_id,
            "expires_at": now + dt.timedelta(seconds=self.dedupe),
        }
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        insert = dialect.insert(event_dedupe).values(**values).on_conflict_do_nothing()
        if (await conn.execute(insert)).rowcount == 1:
            return None
        first_id = (
            await conn.execute(
                sa.select(event_dedupe.c.event_id).where(
                    event_dedupe.c.source == values["source"],
                    event_dedupe.c.delivery_id == values["delivery_id"],
                )
            )
        ).scalar_one()
        row = (await conn.execute(sa.select(events).where(events.c.id == first_id))).mappings().first()
        if row is None:  # the event aged out before its delivery id: report the id alone
            return Event(0, first_id, new.source, new.type, new.subject, now, None)
        return _event(row)

    async def replan(self, event: Event, planned: Sequence[tuple[str, str]]) -> list[str]:
        """Deliver ``event`` again to the (subscription, target) pairs: new deliveries, new ids."""
        async with self._db.transaction() as conn:
            return await self._plan(conn, event, self.now(), planned)

    async def _plan(
        self, conn: AsyncConnection, event: Event, now: dt.datetime, planned: Sequence[tuple[str, str]]
    ) -> list[str]:
        if not planned:
            return []
        rows = [
            {
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
            for subscription, target in planned
        ]
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
        return _event(row) if row is not None else None

    async def by_seq(self, seq: int) -> Event | None:
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(events).where(events.c.seq == seq))).mappings().first()
        return _event(row) if row is not None else None

    async def after(
        self, cursor: int, *, match: EventFilter | None = None, limit: int = 100
    ) -> tuple[list[Event], int]:
        """Events after ``cursor`` that ``match`` (at most ``limit``), and the cursor to pass next."""
        found: list[Event] = []
        while len(found) < limit:
            batch = await self._read(cursor, max(limit, 100))
            if not batch:
                break
            for event in batch:
                cursor = event.seq
                if match is None or match.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        break
        return found, cursor

    async def _read(self, cursor: int, limit: int) -> list[Event]:
        query = sa.select(events).where(events.c.seq > cursor).order_by(events.c.seq).limit(limit)
        async with self._db.transaction() as conn:
            rows = [_event(r) for r in (await conn.execute(query)).mappings().all()]
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

    async def head(self) -> int:
        async with self._db.transaction() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0)))).scalar_one()
            )

    async def tail(self, limit: int = 20, *, match: EventFilter | None = None) -> list[Event]:
        """The latest events (oldest first) that ``match``."""
        query = sa.select(events).order_by(events.c.seq.desc()).limit(limit if match is None else limit * 20)
        async with self._db.transaction() as conn:
            rows = [_event(r) for r in (await conn.execute(query)).mappings().all()]
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


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _event(row: Mapping[str, Any] | sa.RowMapping) -> Event:
    return Event(
        seq=int(row["seq"]),
        id=row["id"],
        source=row["source"],
        type=row["type"],
        subject=row["subject"],
        time=_aware(row["time"]),
        payload=row["payload"],
    )
