"""Durable run state: a run row and one row per step (per iteration), written before and after each effect.

Runs are claimed like outbox items (``resilience/_outbox.py``): a lease with a token naming the worker
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renewed by a heartbeat while the worker runs it; a run whose
worker died is claimed again when its lease ends. Every write about a run is *fenced*: it applies only
while the writer still holds the lease under its token (the same transaction first touches the run row
under the token), so a worker whose lease was taken over can record nothing.

Run states: ``queued`` → ``running`` → ``succeeded``; on a failure or a cancel ``compensating`` →
``failed`` | ``cancelled`` (everything undone) or ``needs_attention`` (a compensation failed for good).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import LeaseLost
from toolbridge.pipelines._tables import pipeline_runs as runs
from toolbridge.pipelines._tables import pipeline_steps as steps
from toolbridge.storage import Database

__all__ = ["ACTIVE", "TERMINAL", "Run", "RunStore", "StepRecord"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "needs_attention"})
ACTIVE = frozenset({"queued", "running", "compensating"})


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    pipeline: str
    principal: str
    input: Mapping[str, Any]
    state: str
    output: Any
    error: Mapping[str, Any] | None
    request_id: str
    cancel_requested: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    lease_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "pipeline": self.pipeline,
            "state": self.state,
            "output": self.output,
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at.isoformat(timespec="milliseconds"),
            "updated_at": self.updated_at.isoformat(timespec="milliseconds"),
        }


@dataclass(frozen=True, slots=True)
class StepRecord:
    key: str
    tool: str
    state: str
    attempts: int
    seq: int | None
    output: Any
    compensation: Mapping[str, Any] | None
    error: Mapping[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "tool": self.tool,
            "state": self.state,
            "attempts": self.attempts,
            "output": self.output,
            "error": self.error,
        }


class RunStore:
    def __init__(
        self, database: Database, *, lease: float = 30.0, clock: Callable[[], dt.datetime] | None = None
    ) -> None:
        self._db = database
        self.lease = lease
        self._now = clock or (lambda: dt.datetime.now(dt.UTC))

    # -- runs ----------------------------------------------------------------------------------------

    async def create(
        self,
        pipeline: str,
        principal: str,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        owner: str | None,
    ) -> Run:
        """A new run, due now; with ``owner`` it is created already leased to that worker."""
        now = self._now()
        row = {
            "id": secrets.token_hex(8),
            "pipeline": pipeline,
            "principal": principal,
            "input": dict(arguments),
            "state": "running" if owner else "queued",
            "output": None,
            "error": None,
            "request_id": request_id[:64],
            "cancel_requested": False,
            "next_attempt_at": now,
            "lease_until": now + self._lease() if owner else None,
            "lease_token": _token(owner) if owner else None,
            "seq": 0,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction() as conn:
            await conn.execute(runs.insert().values(**row))
        return _run(row)

    async def get(self, run_id: str, *, principal: str | None = None) -> Run | None:
        query = sa.select(runs).where(runs.c.id == run_id)
        if principal is not None:
            query = query.where(runs.c.principal == principal)
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _run(row) if row is not None else None

    async def runs(
        self, *, principal: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[Run]:
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
        if principal is not None:
            query = query.where(runs.c.principal == principal)
        if state is not None:
            query = query.where(runs.c.state == state)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_run(r) for r in rows]

    async def steps(self, run_id: str) -> list[StepRecord]:
        query = sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.started_at, steps.c.key)
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_step(r) for r in rows]

    async def claim_due(self, limit: int, *, owner: str) -> list[Run]:
        """Lease up to ``limit`` due runs: queued or waiting and due, or active with an expired lease."""
        now = self._now()
        due = sa.and_(
            runs.c.state.in_(tuple(ACTIVE)),
            runs.c.next_attempt_at <= now,
            sa.or_(runs.c.lease_until.is_(None), runs.c.lease_until <= now),
        )
        pick = sa.select(runs.c.id).where(due).order_by(runs.c.next_attempt_at).limit(limit)
        return await self._claim(pick, owner, now)

    async def claim(self, run_id: str, *, owner: str) -> Run | None:
        """Lease one run if it is active and nobody holds it (``resume`` on a stopped one)."""
        now = self._now()
        free = sa.or_(runs.c.lease_until.is_(None), runs.c.lease_until <= now)
        pick = sa.select(runs.c.id).where(runs.c.id == run_id, runs.c.state.in_(tuple(ACTIVE)), free)
        found = await self._claim(pick, owner, now)
        return found[0] if found else None

    async def _claim(self, pick: sa.Select[Any], owner: str, now: dt.datetime) -> list[Run]:
        if self._db.dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        claim = (
            runs.update()
            .where(runs.c.id.in_(pick.scalar_subquery()))
            .values(
                state=sa.case((runs.c.state == "queued", "running"), else_=runs.c.state),
                lease_until=now + self._lease(),
                lease_token=_token(owner),
                updated_at=now,
            )
            .returning(*runs.c)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(claim)).mappings().all()
        return sorted((_run(r) for r in rows), key=lambda r: (r.created_at, r.id))

    async def renew(self, run: Run) -> bool:
        now = self._now()
        async with self._db.transaction() as conn:
            result = await conn.execute(_mine(run).values(lease_until=now + self._lease()))
        return bool(result.rowcount)

    async def release(self, run: Run, *, after: float) -> None:
        """Give the run back, to be claimed again in ``after`` seconds (a step waits for a retry)."""
        when = self._now() + dt.timedelta(seconds=after)
        async with self._fenced(run) as conn:
            await conn.execute(
                runs.update()
                .where(runs.c.id == run.id)
                .values(lease_until=None, lease_token=None, next_attempt_at=when)
            )

    async def set_state(self, run: Run, state: str, *, error: Mapping[str, Any] | None = None) -> None:
        async with self._fenced(run) as conn:
            values: dict[str, Any] = {"state": state}
            if error is not None:
                values["error"] = dict(error)
            await conn.execute(runs.update().where(runs.c.id == run.id).values(**values))

    async def finish(
        self, run: Run, state: str, *, output: Any = None, error: Mapping[str, Any] | None = None
    ) -> None:
        async with self._fenced(run) as conn:
            values: dict[str, Any] = {
                "state": state,
                "lease_until": None,
                "lease_token": None,
                "output": output,
            }
            if error is not None:
                values["error"] = dict(error)
            await conn.execute(runs.update().where(runs.c.id == run.id).values(**values))

    async def cancel(self, run_id: str, *, principal: str | None) -> Run | None:
        """Ask an active run to stop and undo what it did (its worker sees it at the next step)."""
        where = sa.and_(runs.c.id == run_id, runs.c.state.in_(tuple(ACTIVE)))
        if principal is not None:
            where = sa.and_(where, runs.c.principal == principal)
        async with self._db.transaction() as conn:
            await conn.execute(
                runs.update().where(where).values(cancel_requested=True, updated_at=self._now())
            )
        return await self.get(run_id, principal=principal)

    async def reopen(self, run_id: str, *, principal: str | None) -> Run | None:
        """Put a run that ended ``needs_attention`` back to compensating, due now (after a person fixed
        what its compensation needed)."""
        where = sa.and_(runs.c.id == run_id, runs.c.state == "needs_attention")
        if principal is not None:
            where = sa.and_(where, runs.c.principal == principal)
        now = self._now()
        async with self._db.transaction() as conn:
            await conn.execute(
                runs.update().where(where).values(state="compensating", next_attempt_at=now, updated_at=now)
            )
            await conn.execute(
                steps.update()
                .where(steps.c.run_id == run_id, steps.c.state == "compensation_failed")
                .values(state="done")
            )
        return await self.get(run_id, principal=principal)

    async def cancel_requested(self, run: Run) -> bool:
        async with self._db.transaction() as conn:
            flag = (
                await conn.execute(sa.select(runs.c.cancel_requested).where(runs.c.id == run.id))
            ).scalar()
        return bool(flag)

    # -- steps ---------------------------------------------------------------------------------------

    async def step_started(self, run: Run, key: str, tool: str, *, attempts: int) -> bool:
        """Recorded before the effect: the step runs (again) with this many attempts so far. Returns
        whether a cancel was asked for (then the step is not called)."""
        fence = self._fenced(run)
        async with fence as conn:
            values = {"tool": tool, "state": "running", "attempts": attempts, "error": None}
            updated = await conn.execute(
                steps.update().where(steps.c.run_id == run.id, steps.c.key == key).values(**values)
            )
            if not updated.rowcount:
                await conn.execute(
                    steps.insert().values(run_id=run.id, key=key, started_at=self._now(), **values)
                )
        return fence.cancel_requested

    async def step_done(
        self, run: Run, key: str, output: Any, compensation: Mapping[str, Any] | None, *, state: str = "done"
    ) -> None:
        """Recorded after the effect: the output, and the call that undoes it (rendered now)."""
        async with self._fenced(run, count=True) as conn:
            seq = (await conn.execute(sa.select(runs.c.seq).where(runs.c.id == run.id))).scalar()
            await conn.execute(
                steps.update()
                .where(steps.c.run_id == run.id, steps.c.key == key)
                .values(
                    state=state,
                    output=output,
                    compensation=dict(compensation) if compensation else None,
                    seq=seq,
                    finished_at=self._now(),
                )
            )

    async def step_state(
        self, run: Run, key: str, state: str, *, error: Mapping[str, Any] | None = None
    ) -> None:
        async with self._fenced(run) as conn:
            values: dict[str, Any] = {"state": state, "finished_at": self._now()}
            if error is not None:
                values["error"] = dict(error)
            await conn.execute(
                steps.update().where(steps.c.run_id == run.id, steps.c.key == key).values(**values)
            )

    async def step_skipped(self, run: Run, key: str, tool: str) -> None:
        now = self._now()
        async with self._fenced(run) as conn:
            await conn.execute(
                steps.insert().values(
                    run_id=run.id,
                    key=key,
                    tool=tool,
                    state="skipped",
                    attempts=0,
                    started_at=now,
                    finished_at=now,
                )
            )

    # -- fencing -------------------------------------------------------------------------------------

    def _fenced(self, run: Run, *, count: bool = False) -> _Fence:
        return _Fence(self, run, count)

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease)


class _Fence:
    """A transaction that first touches the run row under the caller's lease token (LeaseLost if gone)."""

    def __init__(self, store: RunStore, run: Run, count: bool) -> None:
        self._store, self._run, self._count = store, run, count
        self._tx: Any = None
        self.cancel_requested = False

    async def __aenter__(self) -> AsyncConnection:
        self._tx = self._store._db.transaction()
        conn: AsyncConnection = await self._tx.__aenter__()
        values: dict[str, Any] = {"updated_at": self._store._now()}
        if self._count:
            values["seq"] = runs.c.seq + 1
        touched = (
            await conn.execute(_mine(self._run).values(**values).returning(runs.c.cancel_requested))
        ).first()
        if touched is None:
            await self._tx.__aexit__(None, None, None)
            self._tx = None
            raise LeaseLost(
                f"pipeline run {self._run.id} is held by another worker now",
                hint="nothing to do: the worker holding it goes on",
            )
        self.cancel_requested = bool(touched[0])
        return conn

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._tx is not None:
            await self._tx.__aexit__(*exc_info)


def _mine(run: Run) -> sa.Update:
    return runs.update().where(runs.c.id == run.id, runs.c.lease_token == run.lease_token)


def _token(owner: str) -> str:
    return f"{owner[:40]}/{secrets.token_hex(8)}"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _run(row: Mapping[str, Any] | sa.RowMapping) -> Run:
    return Run(
        id=row["id"],
        pipeline=row["pipeline"],
        principal=row["principal"],
        input=row["input"],
        state=row["state"],
        output=row["output"],
        error=row["error"],
        request_id=row["request_id"],
        cancel_requested=bool(row["cancel_requested"]),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        lease_token=row.get("lease_token"),
    )


def _step(row: Mapping[str, Any] | sa.RowMapping) -> StepRecord:
    return StepRecord(
        key=row["key"],
        tool=row["tool"],
        state=row["state"],
        attempts=int(row["attempts"]),
        seq=row["seq"],
        output=row["output"],
        compensation=row["compensation"],
        error=row["error"],
    )
