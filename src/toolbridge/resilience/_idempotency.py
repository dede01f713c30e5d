"""Idempotent calls: (principal, key) → request digest and final outcome, kept ``retention`` (24 h).

- first use: the key is claimed (``in_flight``) before the upstream is called;
- same key, same arguments, finished: the stored outcome is replayed — errors, 5xx included — and the
  upstream is not called again;
- same key, different arguments: 422; same key while the first call runs: 409;
- a claim older than ``stale_after`` (its process died mid-call) may be taken over.

Keys are scoped by principal, so two tenants' equal keys never see each other's outcomes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from toolbridge.errors import Conflict, IdempotencyKeyReused, ToolbridgeError, from_problem, problem
from toolbridge.storage import Database, idempotency_records

__all__ = ["IdempotencyStore", "Replay"]


@dataclass(frozen=True, slots=True)
class Replay:
    """A stored outcome: ``result`` (the CallResult fields) or ``error`` (a problem document)."""

    result: Mapping[str, Any] | None
    error: Mapping[str, Any] | None

    def raise_or_result(self) -> Mapping[str, Any]:
        if self.error is not None:
            raise from_problem(self.error)
        assert self.result is not None
        return self.result


class IdempotencyStore:
    def __init__(
        self, database: Database, *, retention: float = 86_400.0, stale_after: float = 600.0
    ) -> None:
        self._db = database
        self._retention = dt.timedelta(seconds=retention)
        self._stale = dt.timedelta(seconds=stale_after)

    async def claim(self, principal: str, key: str, tool: str, digest: str) -> Replay | None:
        """Claim ``key`` for this call, or return the stored outcome to replay; raise 409/422 otherwise."""
        now = dt.datetime.now(dt.UTC)
        row = {
            "principal": principal,
            "key": key,
            "tool": tool,
            "request_digest": digest,
            "state": "in_flight",
            "outcome": None,
            "created_at": now,
            "expires_at": now + self._retention,
        }
        try:
            async with self._db.transaction() as conn:
                await conn.execute(idempotency_records.insert().values(**row))
            return None
        except ToolbridgeError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        return await self._existing(principal, key, tool, digest, now, row)

    async def _existing(
        self, principal: str, key: str, tool: str, digest: str, now: dt.datetime, row: dict[str, Any]
    ) -> Replay | None:
        where = sa.and_(idempotency_records.c.principal == principal, idempotency_records.c.key == key)
        async with self._db.transaction() as conn:
            found = (await conn.execute(sa.select(idempotency_records).where(where))).mappings().first()
            if found is None or _aware(found["expires_at"]) <= now or self._abandoned(found, now):
                await conn.execute(idempotency_records.delete().where(where))
                await conn.execute(idempotency_records.insert().values(**row))
                return None
        if found["request_digest"] != digest or found["tool"] != tool:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} was first used for a different call ({found['tool']!r} with other "
                "arguments)",
                hint="use a new key for a new operation; reuse a key only to retry the same call",
            )
        if found["state"] == "in_flight":
            raise Conflict(
                f"a call with idempotency key {key!r} is still in progress",
                hint="wait for it to finish, then retry with the same key to get its result",
            )
        outcome = found["outcome"] or {}
        return Replay(outcome.get("result"), outcome.get("error"))

    def _abandoned(self, found: sa.RowMapping, now: dt.datetime) -> bool:
        return found["state"] == "in_flight" and _aware(found["created_at"]) + self._stale <= now

    async def complete(
        self,
        principal: str,
        key: str,
        *,
        result: Mapping[str, Any] | None = None,
        error: ToolbridgeError | None = None,
    ) -> None:
        outcome = {"error": problem(error)} if error is not None else {"result": dict(result or {})}
        where = sa.and_(idempotency_records.c.principal == principal, idempotency_records.c.key == key)
        async with self._db.transaction() as conn:
            await conn.execute(
                idempotency_records.update().where(where).values(state="done", outcome=outcome)
            )

    async def release(self, principal: str, key: str) -> None:
        """Forget a claim whose call never reached the upstream (refused before invoking)."""
        where = sa.and_(
            idempotency_records.c.principal == principal,
            idempotency_records.c.key == key,
            idempotency_records.c.state == "in_flight",
        )
        async with self._db.transaction() as conn:
            await conn.execute(idempotency_records.delete().where(where))

    async def purge(self) -> int:
        """Delete expired records; returns how many."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                idempotency_records.delete().where(
                    idempotency_records.c.expires_at <= dt.datetime.now(dt.UTC)
                )
            )
        return int(result.rowcount)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
