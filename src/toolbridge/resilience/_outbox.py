"""The outbox: writes that exhausted their retries on transient failures, retried later by a worker.

A queued write is a database row before the caller hears "queued", so it survives ``kill -9``. Every item
carries an idempotency key (the caller's, or ``outbox-<id>``), sent upstream on every attempt by connectors
that send keys, so a retry that races a slow first attempt is applied once by Stripe-style APIs.

Workers claim due items with a lease and a lease token (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). The
worker renews the leases of the items it holds while it works (a heartbeat), checks an item's lease
right before calling for it, and records an outcome only under its own token: an item whose lease was
taken over by another worker is left to that worker. An item whose worker died is claimed again when
its lease ends. Backoff is exponential with full jitter.

States: ``queued`` → ``running`` → ``done`` | ``queued`` (retry later) | ``parked`` (needs a person to
reconnect; looked at again every ``park_delay``) | ``failed`` (can never succeed, or ``max_attempts``
attempts that reached the upstream all failed).
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

from toolbridge._suggest import close_matches
from toolbridge.errors import (
    BadRequest,
    CircuitOpen,
    OutcomeUnknown,
    ToolbridgeError,
    UpstreamBusy,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
    did_you_mean,
    problem,
)
from toolbridge.resilience._policy import NOT_PROCESSED_STATUSES, RETRYABLE_STATUSES
from toolbridge.storage import Database, outbox

__all__ = ["Outbox", "OutboxItem", "is_queueable", "key_handling"]

logger = logging.getLogger("toolbridge.outbox")
STATES = ("queued", "running", "parked", "done", "failed")


def is_queueable(exc: ToolbridgeError, *, keyed: bool) -> bool:
    """Transient failures that left nothing applied; with a key, any transient upstream failure."""
    if isinstance(exc, CircuitOpen | UpstreamBusy):
        return True
    if isinstance(exc, UpstreamUnavailable):
        return keyed or not exc.sent
    if isinstance(exc, UpstreamStatusError):
        statuses = RETRYABLE_STATUSES if keyed else NOT_PROCESSED_STATUSES
        return exc.upstream_status in statuses
    return keyed and isinstance(exc, OutcomeUnknown | UpstreamTimeout)


def key_handling(carrier: str | None) -> str:
    """What happens to a call's idempotency key, in words (``toolbridge tools show``)."""
    if carrier is None:
        return (
            "not sent upstream: a keyed write is replayed by toolbridge but not retried once its request "
            "may have reached the upstream (outcome_unknown)"
        )
    return f"sent upstream in {carrier}; retries and queued retries reuse the call's key"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: str
    principal: str
    tool: str
    arguments: Mapping[str, Any]
    idempotency_key: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: Mapping[str, Any] | None
    result: Mapping[str, Any] | None
    lease_token: str | None = None

    @property
    def callers_key(self) -> bool:
        """Whether the key is the caller's (its replays answer the item's outcome), not ``outbox-<id>``: a
        caller's own key may start with ``outbox-`` too."""
        return self.idempotency_key != f"outbox-{self.id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(timespec="seconds"),
            "last_error": self.last_error,
            "result": self.result,
        }


class Outbox:
    def __init__(
        self,
        database: Database,
        *,
        max_attempts: int = 10,
        base_delay: float = 5.0,
        max_delay: float = 3600.0,
        lease: float = 120.0,
        park_delay: float = 300.0,
        rng: random.Random | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._db = database
        self.max_attempts = max_attempts
        self._base = base_delay
        self._cap = max_delay
        self.lease = lease
        self._park = dt.timedelta(seconds=park_delay)
        self._rng = rng or random.Random()
        self._now = clock or database.now

    async def enqueue(
        self, principal: str, tool: str, arguments: Mapping[str, Any], key: str | None, error: ToolbridgeError
    ) -> OutboxItem:
        item_id = secrets.token_hex(8)
        now = self._now()
        row = {
            "id": item_id,
            "principal": principal,
            "tool": tool,
            "arguments": dict(arguments),
            "idempotency_key": key or f"outbox-{item_id}",
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": now + self._delay(1),
            "lease_until": None,
            "last_error": problem(error),
            "result": None,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction() as conn:
            await conn.execute(outbox.insert().values(**row))
        return _item(row)

    async def get(self, item_id: str, *, principal: str | None = None) -> OutboxItem | None:
        query = sa.select(outbox).where(outbox.c.id == item_id)
        if principal is not None:
            query = query.where(outbox.c.principal == principal)
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _item(row) if row is not None else None

    async def items(
        self, *, principal: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[OutboxItem]:
        if state is not None and state not in STATES:  # it listed nothing, as if nothing were queued
            guess = did_you_mean(close_matches(state, STATES))
            raise BadRequest(
                f"no outbox state {state!r}" + (f"; {guess}" if guess else ""),
                hint=f"use one of {', '.join(STATES)}",
            )
        query = sa.select(outbox).order_by(outbox.c.created_at.desc()).limit(limit)
        if principal is not None:
            query = query.where(outbox.c.principal == principal)
        if state is not None:
            query = query.where(outbox.c.state == state)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_item(r) for r in rows]

    async def claim_due(self, limit: int = 10, *, owner: str = "worker") -> list[OutboxItem]:
        """Lease up to ``limit`` due items (queued or parked and due, or running with an expired lease)
        under a fresh token naming ``owner``."""
        now = self._now()
        due = sa.or_(
            sa.and_(outbox.c.state.in_(("queued", "parked")), outbox.c.next_attempt_at <= now),
            sa.and_(outbox.c.state == "running", outbox.c.lease_until <= now),
        )
        pick = sa.select(outbox.c.id).where(due).order_by(outbox.c.next_attempt_at).limit(limit)
        if self._db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claim = (
            outbox.update()
            .where(outbox.c.id.in_(pick.scalar_subquery()))
            .values(
                state="running",
                lease_until=now + dt.timedelta(seconds=self.lease),
                lease_token=f"{owner[:40]}/{secrets.token_hex(8)}",
                attempts=outbox.c.attempts + 1,
                updated_at=now,
            )
            .returning(*outbox.c)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(claim)).mappings().all()
        return sorted(
            (_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.id)
        )  # RETURNING: any order

    async def renew(self, items: Iterable[OutboxItem]) -> set[str]:
        """Extend the leases of ``items`` still held under their tokens; returns the ids still held."""
        held: set[str] = set()
        now = self._now()
        async with self._db.transaction() as conn:
            for item in items:
                result = await conn.execute(
                    self._mine(item).values(
                        lease_until=now + dt.timedelta(seconds=self.lease), updated_at=now
                    )
                )
                if result.rowcount:
                    held.add(item.id)
        return held

    async def succeed(self, item: OutboxItem, result: Mapping[str, Any]) -> bool:
        """Record the result, if ``item`` is still leased to this holder (False: another holder has it)."""
        return await self._settle(item, state="done", result=dict(result))

    async def retry_later(
        self, item: OutboxItem, error: ToolbridgeError, *, wait: float | None = None, counts: bool = True
    ) -> str:
        """Reschedule after a transient failure; returns the new state (``failed`` once the attempts that
        reached the upstream are used up). ``counts=False``: the attempt never reached the upstream
        (rate limited, breaker open, storage down) and does not use one up."""
        if counts and item.attempts >= self.max_attempts:
            await self.fail(item, error)
            return "failed"
        delay = self._delay(item.attempts + 1)
        if wait is not None:
            delay = max(delay, dt.timedelta(seconds=wait))
        attempts = item.attempts if counts else item.attempts - 1
        await self._settle(
            item,
            state="queued",
            last_error=problem(error),
            attempts=attempts,
            next_attempt_at=self._now() + delay,
        )
        return "queued"

    async def park(self, item: OutboxItem, error: ToolbridgeError) -> bool:
        """Set aside until a person reconnects the account (looked at again every ``park_delay``)."""
        return await self._settle(
            item,
            state="parked",
            last_error=problem(error),
            attempts=item.attempts - 1,
            next_attempt_at=self._now() + self._park,
        )

    async def release(self, items: Iterable[OutboxItem]) -> None:
        """Give back the leases of claimed ``items`` that were never attempted (a worker stopping): due
        again at once for any worker, their claim's attempt not counted."""
        now = self._now()
        async with self._db.transaction() as conn:
            for item in items:
                await conn.execute(
                    self._mine(item).values(
                        state="queued",
                        attempts=item.attempts - 1,
                        lease_until=None,
                        lease_token=None,
                        updated_at=now,
                    )
                )

    async def fail(self, item: OutboxItem, error: ToolbridgeError) -> bool:
        return await self._settle(item, state="failed", last_error=problem(error))

    def _mine(self, item: OutboxItem) -> sa.Update:
        """An update of ``item`` that only applies while it is running under the same lease token."""
        return outbox.update().where(
            outbox.c.id == item.id, outbox.c.lease_token == item.lease_token, outbox.c.state == "running"
        )

    async def _settle(self, item: OutboxItem, **values: Any) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                self._mine(item).values(updated_at=self._now(), lease_until=None, lease_token=None, **values)
            )
        if not result.rowcount:
            logger.warning(
                "outbox item %s: lease lost to another worker; its outcome is not recorded", item.id
            )
        return bool(result.rowcount)

    async def _update(self, item: OutboxItem, **values: Any) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                outbox.update().where(outbox.c.id == item.id).values(updated_at=self._now(), **values)
            )

    def _delay(self, attempt: int) -> dt.timedelta:
        return dt.timedelta(seconds=self._rng.uniform(0, min(self._cap, self._base * 2 ** (attempt - 1))))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _item(row: Mapping[str, Any] | sa.RowMapping) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        principal=row["principal"],
        tool=row["tool"],
        arguments=row["arguments"],
        idempotency_key=row["idempotency_key"],
        state=row["state"],
        attempts=int(row["attempts"]),
        next_attempt_at=_aware(row["next_attempt_at"]),
        last_error=row["last_error"],
        result=row["result"],
        lease_token=row.get("lease_token"),
    )
