"""Idempotent calls: (principal, key) → request digest and final outcome, kept ``retention`` (24 h).

- first use: the key is claimed (``in_flight``) before the upstream is called; the claim names its
  owner (this process) and holds a short lease that the owner renews while it runs (a heartbeat);
- same key, same arguments, finished: the stored outcome is replayed — errors, 5xx included — and the
  upstream is not called again;
- same key, different arguments: 422; same key while the first call runs: 409 with ``Retry-After``;
- a claim whose owner is gone (its lease ran out: the process was killed mid-call) is resolved at once
  by the next call with that key: a call that can safely run again (its connector sends the key
  upstream, or the tool is idempotent) takes the claim over and runs, so the upstream answers with the
  same key; any other gets ``outcome_unknown`` naming the original request id, and that is stored.

Keys are scoped by principal, so two tenants' equal keys never see each other's outcomes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import sqlalchemy as sa
from anyio.abc import TaskGroup
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import (
    BadRequest,
    IdempotencyKeyReused,
    KeyInFlight,
    OutcomeUnknown,
    StorageError,
    ToolbridgeError,
    from_problem,
    problem,
)
from toolbridge.storage import Database, idempotency_records

__all__ = ["MAX_KEY_LENGTH", "IdempotencyStore", "JoinedClaim", "JoinedCompletion", "Replay", "check_key"]

logger = logging.getLogger("toolbridge.resilience")
_records = idempotency_records


MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    """``key`` if it is a usable idempotency key (1-255 printable ASCII characters), else a 400."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise BadRequest(
            f"the idempotency key must be 1-{MAX_KEY_LENGTH} printable ASCII characters "
            f"(got {len(key)} characters{'' if key.isprintable() else ', some not printable'})",
            hint="use a UUID or another unique token per logical operation",
        )
    return key


@dataclass(frozen=True, slots=True)
class JoinedClaim:
    """A claim of a key made inside the caller's transaction, so it commits with the caller's own writes
    (a pipeline step's start). Called with the connection: True when claimed there — a new claim, or one
    still in flight for the same call taken over, whatever its lease: the caller holds what makes it the
    key's only user (a pipeline run's lease, checked in the same transaction), so that claim was left by
    an earlier holder that stopped. False when the key is finished or names another call: the call then
    goes through :meth:`IdempotencyStore.claim` as usual (replay, 422, or a new claim if it expired).
    ``row`` is the record as claimed (a caller may fold it into a statement of its own)."""

    row: Mapping[str, Any]

    async def __call__(self, conn: AsyncConnection) -> bool:
        statement = _CLAIM_IN[conn.dialect.name == "postgresql"]
        return (await conn.execute(statement, dict(self.row))).first() is not None


@dataclass(frozen=True, slots=True)
class JoinedCompletion:
    """A successful outcome stored inside the caller's transaction (a pipeline step's result, written with
    the step's own record): it commits, or is rolled back, with the caller's writes."""

    principal: str
    key: str
    outcome: Mapping[str, Any]

    async def __call__(self, conn: AsyncConnection) -> None:
        await conn.execute(_COMPLETE, _completion(self.principal, self.key, self.outcome))


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
    """Use as an async context manager to renew this process's claims while they run (the hub does)."""

    def __init__(
        self,
        database: Database,
        *,
        retention: float = 86_400.0,
        lease: float = 15.0,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._db = database
        self._retention = dt.timedelta(seconds=retention)
        self.lease = lease
        self._now = clock or database.now
        self.owner = f"{socket.gethostname()[:20]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> IdempotencyStore:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._heartbeat)
        self._tg.start_soon(self._db.follow_clock)  # claims are leased in the database server's time
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            try:
                await self.renew()
            except StorageError as exc:
                logger.warning("could not renew idempotency claims: %s", exc)

    async def renew(self) -> None:
        """Extend the leases of every claim this process holds."""
        mine = sa.and_(_records.c.owner == self.owner, _records.c.state == "in_flight")
        async with self._db.transaction() as conn:
            await conn.execute(_records.update().where(mine).values(lease_until=self._lease_end()))

    async def claim(
        self,
        principal: str,
        key: str,
        tool: str,
        digest: str,
        *,
        request_id: str = "",
        resumable: bool = False,
    ) -> Replay | None:
        """Claim ``key`` for this call, or return the stored outcome to replay; raise 409/422 otherwise.

        ``resumable``: this call may run again after a crash (its key reaches the upstream, or the tool
        is idempotent), so an orphaned claim is taken over instead of answered ``outcome_unknown``.
        """
        row = self._row(principal, key, tool, digest, request_id)
        try:
            async with self._db.transaction() as conn:
                await conn.execute(_records.insert(), row)
            return None
        except ToolbridgeError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        return await self._existing(row, resumable)

    def joined_claim(
        self, principal: str, key: str, tool: str, digest: str, *, request_id: str
    ) -> JoinedClaim:
        """A claim of ``key`` to be made inside a caller's transaction (:class:`JoinedClaim`)."""
        return JoinedClaim(self._row(principal, key, tool, digest, request_id))

    @staticmethod
    def joined_completion(principal: str, key: str, *, result: Mapping[str, Any]) -> JoinedCompletion:
        """A successful outcome to be stored inside a caller's transaction (:class:`JoinedCompletion`)."""
        return JoinedCompletion(principal, key, {"result": dict(result)})

    async def claim_in(
        self, conn: AsyncConnection, principal: str, key: str, tool: str, digest: str, *, request_id: str
    ) -> bool:
        """:meth:`joined_claim` made now, in ``conn``'s transaction."""
        return await self.joined_claim(principal, key, tool, digest, request_id=request_id)(conn)

    async def complete_in(
        self, conn: AsyncConnection, principal: str, key: str, *, result: Mapping[str, Any]
    ) -> None:
        """:meth:`joined_completion` made now, in ``conn``'s transaction."""
        await self.joined_completion(principal, key, result=result)(conn)

    def _row(self, principal: str, key: str, tool: str, digest: str, request_id: str) -> dict[str, Any]:
        now = self._now()
        return {
            "principal": principal,
            "key": key,
            "tool": tool,
            "request_digest": digest,
            "state": "in_flight",
            "outcome": None,
            "created_at": now,
            "expires_at": now + self._retention,
            "owner": self.owner,
            "lease_until": self._lease_end(),
            "request_id": request_id[:64],
        }

    async def _existing(self, row: dict[str, Any], resumable: bool) -> Replay | None:
        key, now = row["key"], row["created_at"]
        where = _where(row["principal"], key)
        async with self._db.transaction() as conn:
            found = (await conn.execute(sa.select(_records).where(where))).mappings().first()
            if found is None or _aware(found["expires_at"]) <= now:
                await conn.execute(_records.delete().where(where))
                await conn.execute(_records.insert(), row)
                return None
        if found["request_digest"] != row["request_digest"] or found["tool"] != row["tool"]:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} was first used for a different call ({found['tool']!r} with other "
                "arguments)",
                hint="use a new key for a new operation; reuse a key only to retry the same call",
            )
        if found["state"] == "in_flight":
            return await self._in_flight(found, row, resumable)
        outcome = found["outcome"] or {}
        return Replay(outcome.get("result"), outcome.get("error"))

    async def _in_flight(self, found: sa.RowMapping, row: dict[str, Any], resumable: bool) -> Replay | None:
        """409 while the claim's owner is alive; an orphaned claim is taken over or resolved now."""
        now = row["created_at"]
        ends = _aware(found["lease_until"]) if found["lease_until"] is not None else None
        if ends is None:  # a claim from before leases: its owner is gone after 10 minutes
            ends = _aware(found["created_at"]) + dt.timedelta(seconds=600)
        if ends > now:
            wait = max(1.0, (ends - now).total_seconds())
            raise KeyInFlight(
                f"a call with idempotency key {row['key']!r} is still in progress",
                retry_after=wait,
                hint=f"retry with the same key in {wait:.0f} s to get its result",
            )
        return await self._orphaned(found, row, resumable)

    async def _orphaned(self, found: sa.RowMapping, row: dict[str, Any], resumable: bool) -> Replay | None:
        original = found["request_id"] or "unknown"
        values: dict[str, Any] = {"owner": self.owner, "lease_until": self._lease_end()}
        if not resumable:
            error = OutcomeUnknown(
                f"the call with idempotency key {row['key']!r} (request id {original}) was interrupted: the "
                "process running it stopped mid-call, so it may or may not have taken effect",
                tool=row["tool"],
                hint="check the upstream for the effect before calling again with a new key",
            )
            values = {"state": "done", "outcome": {"error": problem(error)}}
        taken = sa.and_(
            _where(row["principal"], row["key"]),
            _records.c.state == "in_flight",
            _records.c.lease_until == found["lease_until"]
            if found["lease_until"] is not None
            else _records.c.lease_until.is_(None),
        )
        async with self._db.transaction() as conn:
            won = (await conn.execute(_records.update().where(taken).values(**values))).rowcount
        if not won:  # another caller resolved it first: answer as it now stands
            return await self._existing(row, resumable)
        logger.warning(
            "idempotency key of request %s was orphaned by a stopped process; %s",
            original,
            "taken over" if resumable else "answered outcome_unknown",
        )
        return None if resumable else Replay(None, values["outcome"]["error"])

    async def complete(
        self,
        principal: str,
        key: str,
        *,
        result: Mapping[str, Any] | None = None,
        error: ToolbridgeError | None = None,
    ) -> None:
        outcome = {"error": problem(error)} if error is not None else {"result": dict(result or {})}
        async with self._db.transaction() as conn:
            await conn.execute(_COMPLETE, _completion(principal, key, outcome))

    async def complete_queued(self, principal: str, key: str, *, result: Mapping[str, Any]) -> None:
        """Store a call's "queued" answer unless its outbox worker already stored the final one: the item is
        committed before this, and a worker that finished it first wrote the outcome a replay must give
        (an unconditional write left replays answering "queued" for the record's whole retention)."""
        where = sa.and_(_where(principal, key), _records.c.state == "in_flight")
        values = {"state": "done", "outcome": {"result": dict(result)}, "lease_until": None}
        async with self._db.transaction() as conn:
            await conn.execute(_records.update().where(where).values(**values))

    async def release(self, principal: str, key: str) -> None:
        """Forget a claim whose call never reached the upstream (refused before invoking)."""
        where = sa.and_(_where(principal, key), _records.c.state == "in_flight")
        async with self._db.transaction() as conn:
            await conn.execute(_records.delete().where(where))

    async def forget(self, principal: str, key: str) -> None:
        """Drop a finished record, so that the next call with ``key`` runs instead of replaying it (a
        pipeline step retried after a transient failure: its key still reaches the upstream)."""
        where = sa.and_(_where(principal, key), _records.c.state == "done")
        async with self._db.transaction() as conn:
            await conn.execute(_records.delete().where(where))

    async def purge(self) -> int:
        """Delete expired records; returns how many."""
        async with self._db.transaction() as conn:
            result = await conn.execute(_records.delete().where(_records.c.expires_at <= self._now()))
        return int(result.rowcount)

    def _lease_end(self) -> dt.datetime:
        return self._now() + dt.timedelta(seconds=self.lease)


def _claim_in(dialect: Any) -> Any:
    """A new claim, or the take-over of one in flight for the same call (tool and arguments)."""
    insert = dialect.insert(_records)
    same_call = sa.and_(
        _records.c.state == "in_flight",
        _records.c.tool == insert.excluded.tool,
        _records.c.request_digest == insert.excluded.request_digest,
    )
    taken = ("owner", "lease_until", "request_id")
    return insert.on_conflict_do_update(
        index_elements=[_records.c.principal, _records.c.key],
        set_={name: insert.excluded[name] for name in taken},
        where=same_call,
    ).returning(_records.c.key)


_CLAIM_IN = {False: _claim_in(sqlite), True: _claim_in(postgresql)}
""":meth:`IdempotencyStore.claim_in`'s insert (SQLite, PostgreSQL), built once: its columns are the row's."""
_COMPLETE = _records.update().where(
    _records.c.principal == sa.bindparam("b_principal"), _records.c.key == sa.bindparam("b_key")
)
""":meth:`IdempotencyStore.complete`'s update, built once: it sets the columns its parameters name."""


def _completion(principal: str, key: str, outcome: Mapping[str, Any]) -> dict[str, Any]:
    return {"b_principal": principal, "b_key": key, "state": "done", "outcome": outcome, "lease_until": None}


def _where(principal: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(_records.c.principal == principal, _records.c.key == key)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
