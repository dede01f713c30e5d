"""Outbound deliveries: one row per (event, subscription target), planned with the event, leased by workers.

The schedule is Svix's (Standard Webhooks): attempts at 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h
after the previous one, each delay jittered by ±20 %; after the last, the delivery is ``failed``. A worker
leases due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a row whose worker died is leased again when its
lease ends — with the same id, which is the ``webhook-id`` a receiver deduplicates by.

States: ``queued`` → ``running`` → ``done`` | ``queued`` (later) | ``failed`` | ``disabled`` (endpoint gone).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from toolbridge.events._tables import event_deliveries, event_endpoints
from toolbridge.storage import Database

__all__ = ["SCHEDULE", "Deliveries", "DeliveryItem"]

logger = logging.getLogger("toolbridge.events")

SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds before attempt 1, 2, …: the Standard Webhooks / Svix schedule (about 30 hours in all)."""


@dataclass(frozen=True, slots=True)
class DeliveryItem:
    id: str
    event_seq: int
    subscription: str
    target: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: Mapping[str, Any] | None
    lease_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_seq": self.event_seq,
            "subscription": self.subscription,
            "target": self.target,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(timespec="seconds"),
            "last_error": self.last_error,
        }


class Deliveries:
    def __init__(
        self,
        database: Database,
        *,
        lease: float = 60.0,
        schedule: tuple[float, ...] = SCHEDULE,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._db = database
        self._lease = dt.timedelta(seconds=lease)
        self.schedule = schedule
        self.clock = clock or database.time
        """Seconds since the epoch in the database server's time (:meth:`Database.now`): leases are
        compared across processes."""
        self._rng = rng or random.Random()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    async def claim_due(self, limit: int = 10) -> list[DeliveryItem]:
        """Lease up to ``limit`` due deliveries (queued and due, or running with an expired lease)."""
        now, d = self.now(), event_deliveries
        due = sa.or_(
            sa.and_(d.c.state == "queued", d.c.next_attempt_at <= now),
            sa.and_(d.c.state == "running", d.c.lease_until <= now),
        )
        pick = sa.select(d.c.id).where(due).order_by(d.c.next_attempt_at).limit(limit)
        if self._db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claim = (
            d.update()
            .where(d.c.id.in_(pick.scalar_subquery()))
            .values(
                state="running",
                lease_until=now + self._lease,
                lease_token=secrets.token_hex(8),
                attempts=d.c.attempts + 1,
                updated_at=now,
            )
            .returning(*d.c)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(claim)).mappings().all()
        return [_item(r) for r in rows]

    @property
    def lease(self) -> float:
        """Seconds a claim holds a row; a worker renews the leases of rows it still works on every third."""
        return self._lease.total_seconds()

    async def renew(self, items: Iterable[DeliveryItem]) -> set[str]:
        """Extend the leases of ``items`` still held under their tokens; returns the ids still held."""
        d, held, now = event_deliveries, set(), self.now()
        async with self._db.transaction() as conn:
            for item in items:
                mine = sa.and_(d.c.id == item.id, d.c.state == "running", d.c.lease_token == item.lease_token)
                result = await conn.execute(d.update().where(mine).values(lease_until=now + self._lease))
                if result.rowcount == 1:
                    held.add(item.id)
        return held

    async def succeed(self, item: DeliveryItem) -> bool:
        return await self._update(item, state="done", last_error=None)

    async def retry_later(
        self, item: DeliveryItem, error: Mapping[str, Any], *, after: float | None = None
    ) -> bool:
        """Schedule the next attempt; False when this call marked the delivery failed for good (its schedule
        is used up). ``after``: this attempt did not run (the call of an earlier lease of the row still runs
        under the same idempotency key); it uses up no attempt, and the next comes ``after`` seconds on."""
        if after is not None:
            when = self.now() + dt.timedelta(seconds=after)
            values = {"attempts": item.attempts - 1, "next_attempt_at": when}
            await self._update(item, state="queued", last_error=dict(error), **values)
            return True
        if item.attempts >= len(self.schedule):
            return not await self._update(item, state="failed", last_error=dict(error))
        delay = self.schedule[item.attempts] * self._rng.uniform(0.8, 1.2)
        when = self.now() + dt.timedelta(seconds=delay)
        await self._update(item, state="queued", last_error=dict(error), next_attempt_at=when)
        return True

    async def fail(self, item: DeliveryItem, error: Mapping[str, Any], *, state: str = "failed") -> None:
        await self._update(item, state=state, last_error=dict(error))

    async def _update(self, item: DeliveryItem, **values: Any) -> bool:
        """Record an outcome, only while ``item``'s lease still holds the row (else: False, ignored)."""
        d = event_deliveries
        async with self._db.transaction() as conn:
            result = await conn.execute(
                d.update()
                .where(d.c.id == item.id, d.c.state == "running", d.c.lease_token == item.lease_token)
                .values(updated_at=self.now(), lease_until=None, lease_token=None, **values)
            )
        if result.rowcount != 1:
            logger.warning(
                "delivery %s: lease lost (another worker took it over); outcome not recorded", item.id
            )
        return bool(result.rowcount == 1)

    async def get(self, delivery_id: str) -> DeliveryItem | None:
        query = sa.select(event_deliveries).where(event_deliveries.c.id == delivery_id)
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _item(row) if row is not None else None

    async def items(
        self, *, subscription: str | None = None, event_seq: int | None = None, limit: int = 50
    ) -> list[DeliveryItem]:
        d = event_deliveries
        query = sa.select(d).order_by(d.c.created_at.desc(), d.c.id).limit(limit)
        if subscription is not None:
            query = query.where(d.c.subscription == subscription)
        if event_seq is not None:
            query = query.where(d.c.event_seq == event_seq)
        async with self._db.transaction() as conn:
            return [_item(r) for r in (await conn.execute(query)).mappings().all()]

    async def disable(self, subscription: str, reason: str) -> None:
        """Stop delivering to ``subscription``'s endpoint (it answered 410 Gone): pending rows are dropped."""
        now = self.now()
        async with self._db.transaction() as conn:
            exists = await conn.execute(
                sa.select(event_endpoints.c.subscription).where(
                    event_endpoints.c.subscription == subscription
                )
            )
            if exists.first() is None:
                await conn.execute(
                    event_endpoints.insert().values(
                        subscription=subscription, disabled_at=now, reason=reason[:255]
                    )
                )
            await conn.execute(
                event_deliveries.update()
                .where(event_deliveries.c.subscription == subscription, event_deliveries.c.state == "queued")
                .values(state="disabled", updated_at=now)
            )

    async def enable(self, subscription: str) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                event_endpoints.delete().where(event_endpoints.c.subscription == subscription)
            )
        return bool(result.rowcount)

    async def disabled(self) -> dict[str, str]:
        """Subscription → why its endpoint is disabled."""
        async with self._db.transaction() as conn:
            rows = (await conn.execute(sa.select(event_endpoints))).mappings().all()
        return {r["subscription"]: r["reason"] for r in rows}


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _item(row: Mapping[str, Any] | sa.RowMapping) -> DeliveryItem:
    return DeliveryItem(
        id=row["id"],
        event_seq=int(row["event_seq"]),
        subscription=row["subscription"],
        target=row["target"],
        state=row["state"],
        attempts=int(row["attempts"]),
        next_attempt_at=_aware(row["next_attempt_at"]),
        last_error=row["last_error"],
        lease_token=row["lease_token"],
    )
