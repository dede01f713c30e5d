"""Durable run state: a run row and one row per step (per iteration), written before and after each effect.

Runs are claimed like outbox items (``resilience/_outbox.py``): a lease with a token naming the worker
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renewed by a heartbeat while the worker runs it; a run whose
worker died is claimed again when its lease ends. Every write about a run is *fenced*: it applies only
while the writer still holds the lease under its token (the same transaction first touches the run row
under the token), so a worker whose lease was taken over can record nothing.

A step's outcome may be *noted* (:meth:`RunStore.note_done`) rather than written at once: the run's next
fenced write — the next step's start, a skip, the start of compensation or the run's end — writes it
first, in the same transaction. Nothing the run does happens between the two, so the outcome is still
stored before the next effect, and a step transaction costs one commit instead of two. A write about
something else may be joined to a note (the step's idempotency key completed with its result): it is
made in that same transaction, after the note. A worker that dies before that write leaves the step
``running``: the resumed run calls it again under the same idempotency key and the hub replays the
stored result (or, when the key's completion was joined and lost with it, calls the tool again under
the key: only tools safe to repeat have it joined).

A run is claimed with its steps read in the same transaction, and ends with one statement that is also
its fence (the run row updated under the lease token, returned).

A run queued for the workers wakes them: on PostgreSQL its transaction sends ``NOTIFY`` on
:data:`CHANNEL` and workers ``LISTEN`` (:meth:`RunStore.listening`); elsewhere they poll.

Run states: ``queued`` → ``running`` → ``succeeded``; on a failure or a cancel ``compensating`` →
``failed`` | ``cancelled`` (everything undone) or ``needs_attention`` (a compensation failed for good).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import anyio
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.errors import LeaseLost, StorageError
from toolbridge.pipelines import _pg
from toolbridge.pipelines._tables import pipeline_runs as runs
from toolbridge.pipelines._tables import pipeline_steps as steps
from toolbridge.resilience._idempotency import JoinedClaim, JoinedCompletion
from toolbridge.storage import Database

__all__ = ["ACTIVE", "CHANNEL", "TERMINAL", "Claim", "Run", "RunStore", "Started", "StepRecord"]

CHANNEL = "toolbridge_pipeline_runs"
"""The PostgreSQL notification channel on which a queued run wakes the workers."""

Claim = JoinedClaim
"""A write joined to a step's start (in its transaction): the step's idempotency key claimed."""

Joined = JoinedCompletion
"""A write joined to a noted step outcome (in the transaction that writes it): the key completed."""

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
    steps: tuple[StepRecord, ...] | None = None
    """Its steps as read with its claim (none when created here under this lease a moment ago); None:
    not read."""

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


class Started(NamedTuple):
    """What :meth:`RunStore.step_started` found: a cancel asked for; the claim joined to it made."""

    cancel_requested: bool
    claimed: bool


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
        self._now = clock or database.now
        self._noted: dict[tuple[str, str | None], list[_Note]] = {}
        """Step outcomes per run and lease token, written by the run's next fenced transaction under that
        lease (an execution that lost its lease never has its notes written under the next one)."""
        self._upsert = _upsert(postgresql if database.dialect == "postgresql" else sqlite)
        self._creating: dict[tuple[str, str | None], dict[str, Any]] = {}
        """Runs created leased here, by run and lease token: inserted by their first fenced write."""
        self._batcher = _pg.Batcher(database, timeout=lease) if database.dialect == "postgresql" else None
        """PostgreSQL: fenced writes of this process's runs sent together, one statement each batch."""

    # -- runs ----------------------------------------------------------------------------------------

    async def create(
        self,
        pipeline: str,
        principal: str,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        owner: str | None,
        run_id: str | None = None,
    ) -> Run:
        """A new run, due now. With ``owner`` it is created leased to that worker and stored by its first
        fenced write (its first step's start: one transaction less), before anything it does."""
        now = self._now()
        row = {
            "id": run_id or secrets.token_hex(8),
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
        if owner is not None:
            self._creating[_lease_key(run := _run(row, steps=()))] = row
            return run
        async with self._db.transaction() as conn:
            await conn.execute(runs.insert(), row)
            await self._notify(conn)
        return _run(row)

    async def _notify(self, conn: AsyncConnection) -> None:
        """Wake the workers listening (PostgreSQL: delivered when this transaction commits)."""
        if self._db.dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))

    @contextlib.asynccontextmanager
    async def listening(self, wake: Callable[[], None]) -> AsyncIterator[anyio.Event | None]:
        """Call ``wake`` whenever a run is queued, while in the block (PostgreSQL: ``LISTEN`` on a pooled
        connection held meanwhile). Yields an event set when that connection is lost, or None when the
        database cannot notify (then workers poll)."""
        if self._db.dialect != "postgresql":
            yield None
            return
        lost = anyio.Event()

        def notified(*_args: Any) -> None:
            wake()

        def terminated(*_args: Any) -> None:
            lost.set()

        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(self._db.engine.connect())
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.add_listener(CHANNEL, notified)
            except Exception as exc:  # SQLAlchemy's, asyncpg's or the socket's: the database is away
                raise StorageError(
                    f"cannot listen for queued pipeline runs: {exc.__class__.__name__}: {exc}",
                    hint="the database may be down; workers poll meanwhile",
                ) from exc
            driver.add_termination_listener(terminated)
            try:
                yield lost
            finally:
                driver.remove_termination_listener(terminated)
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await driver.remove_listener(CHANNEL, notified)

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
        query = _STEPS.where(steps.c.run_id == run_id)
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
            found: dict[str, list[StepRecord]] = {r["id"]: [] for r in rows}
            if found:  # read with the claim: one transaction less per run
                query = _STEPS.where(steps.c.run_id.in_(list(found)))
                for step in (await conn.execute(query)).mappings():
                    found[step["run_id"]].append(_step(step))
        claimed = (_run(r, steps=tuple(found[r["id"]])) for r in rows)
        return sorted(claimed, key=lambda r: (r.created_at, r.id))

    async def renew(self, run: Run) -> bool:
        if _lease_key(run) in self._creating:  # not stored yet: its row is written with its lease
            return True
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
    ) -> Run:
        """The run ends in ``state`` and its lease is given up; returns the run as stored. The statement
        that ends it is the fence (the run row updated under the lease token)."""
        values: dict[str, Any] = {"state": state, "lease_until": None, "lease_token": None, "output": output}
        if error is not None:
            values["error"] = dict(error)
        ended, _ = await self._write(run, None, end=values)
        return _run(ended)

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
            await self._notify(conn)
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

    async def step_started(
        self, run: Run, key: str, tool: str, *, attempts: int, claim: Claim | None = None
    ) -> Started:
        """Recorded before the effect: the step runs (again) with this many attempts so far. ``claim``
        runs in the same transaction (the step's idempotency key claimed with its start: one commit for
        both), unless a cancel was asked for (then the step is not called)."""
        row = _step_row(key, tool, "running", attempts, self._now())
        touched, claimed = await self._write(run, row, claim=claim)
        return Started(bool(touched["cancel_requested"]), claimed)

    def note_done(
        self,
        run: Run,
        key: str,
        output: Any,
        compensation: Mapping[str, Any] | None,
        *,
        tool: str,
        attempts: int,
        then: Joined | None = None,
    ) -> None:
        """The effect's outcome — the output, and the call that undoes it (rendered now) — written by the
        run's next fenced write, before anything else the run does (module docstring); ``then`` is made
        in that transaction too, after it."""
        row = _step_row(key, tool, "done", attempts, self._now())
        row.update(output=output, compensation=dict(compensation) if compensation else None)
        row["finished_at"] = row["started_at"]
        self._noted.setdefault(_lease_key(run), []).append(_Note(row, then))

    async def flush(self, run: Run) -> None:
        """Write what was noted about ``run`` now (fenced like every write)."""
        await self._write(run, None)

    def forget_noted(self, run: Run) -> list[Joined]:
        """Drop what was noted about ``run`` and not written (its lease is gone; the next owner redoes it);
        returns the writes joined to those notes, for the caller to make on their own. A run created here
        and not stored yet is dropped too (nothing was done)."""
        self._creating.pop(_lease_key(run), None)
        return [n.then for n in self._noted.pop(_lease_key(run), []) if n.then is not None]

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
        row = _step_row(key, tool, "skipped", 0, self._now())
        row["finished_at"] = row["started_at"]
        await self._write(run, row)

    # -- fencing -------------------------------------------------------------------------------------

    def _fenced(self, run: Run, row: dict[str, Any] | None = None) -> _Fence:
        return _Fence(self, run, row)

    async def _write(
        self,
        run: Run,
        row: dict[str, Any] | None,
        *,
        claim: Claim | None = None,
        end: dict[str, Any] | None = None,
    ) -> tuple[sa.RowMapping, bool]:
        """A fenced write with nothing else in it: the run as touched (``cancel_requested``, ``seq``; with
        ``end``, the whole run as stored) and whether ``claim`` was made (not when a cancel was asked
        for). On PostgreSQL one statement, shared with other runs' writes (``_pg.py``), unless the run is
        still to be inserted."""
        key = _lease_key(run)
        noted = self._noted.get(key, [])
        if self._batcher is None or key in self._creating or not _pg.fits([n.then for n in noted], claim):
            fence = _Fence(self, run, row, end=end)
            async with fence as conn:
                claimed = claim is not None and not fence.cancel_requested and await claim(conn)
            assert fence.touched is not None
            return fence.touched, claimed
        self._noted.pop(key, None)
        write = _pg.Write(
            run.id,
            run.lease_token,
            self._now(),
            noted=[n.row for n in noted],
            row=row,
            completions=[n.then for n in noted if n.then is not None],
            claim=claim,
            end=end,
        )
        try:
            touched = await self._batcher.write(write)
        except BaseException:  # not written, or not known to be: kept for the run's next write
            self._noted.setdefault(key, [])[:0] = noted
            raise
        if touched is None:
            self._noted.setdefault(key, [])[:0] = noted
            raise _lost(run)
        return touched, bool(end is None and touched["claimed"])

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.lease)


class _Note(NamedTuple):
    row: dict[str, Any]
    then: Joined | None


class _Fence:
    """A transaction that first touches the run row under the caller's lease token (LeaseLost if gone) —
    or, with ``end``, ends the run with those values — then writes the step outcomes noted for the run
    (numbered in the order they completed) and ``row``, a step row of the caller's, in one statement,
    then the writes joined to the notes."""

    def __init__(
        self, store: RunStore, run: Run, row: dict[str, Any] | None, *, end: dict[str, Any] | None = None
    ) -> None:
        self._store, self._run, self._row, self._end = store, run, row, end
        self._tx: Any = None
        self._noted: list[_Note] = []
        self.cancel_requested = False
        self.touched: sa.RowMapping | None = None
        """The run row as the fence's first statement returned it (with ``end``: the whole row)."""
        self._created: dict[str, Any] | None = None

    async def __aenter__(self) -> AsyncConnection:
        store, run = self._store, self._run
        self._noted = noted = store._noted.pop(_lease_key(run), [])
        self._tx = store._db.transaction()
        conn: AsyncConnection = await self._tx.__aenter__()
        try:
            await self._write(conn, noted)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return conn

    async def _write(self, conn: AsyncConnection, noted: list[_Note]) -> None:
        store, run = self._store, self._run
        created = store._creating.pop(_lease_key(run), None)
        if created is not None:
            try:
                await conn.execute(runs.insert(), created)
            except BaseException:  # not stored: the run's next write tries again
                store._creating[_lease_key(run)] = created
                raise
            self._created = created
        touch = {"b_id": run.id, "b_token": run.lease_token, "b_now": store._now(), "b_add": len(noted)}
        if self._end is None:
            touched = (await conn.execute(_TOUCH, touch)).mappings().first()
        else:
            touched = (await conn.execute(_END, {**touch, **self._end})).mappings().first()
        if touched is None:  # the notes are kept, never to be written under this lease: the next owner
            raise _lost(run)  # redoes those steps; forget_noted gives their joined writes back
        self.touched = touched
        self.cancel_requested = bool(touched["cancel_requested"])
        first = int(touched["seq"]) - len(noted) + 1
        rows = [{**n.row, "run_id": run.id, "seq": first + i} for i, n in enumerate(noted)]
        if self._row is not None:
            rows.append({**self._row, "run_id": run.id})
        if rows:
            await conn.execute(store._upsert, rows)
        for note in noted:
            if note.then is not None:
                await note.then(conn)

    async def __aexit__(self, *exc_info: Any) -> None:
        tx, self._tx = self._tx, None
        if exc_info[0] is not None:  # not written: keep them for the run's next write
            self._keep()
        try:
            await tx.__aexit__(*exc_info)
        except BaseException:
            if exc_info[0] is None:  # the commit failed
                self._keep()
            raise

    def _keep(self) -> None:
        key = _lease_key(self._run)
        if self._noted:
            self._store._noted.setdefault(key, [])[:0] = self._noted
        if self._created is not None:
            self._store._creating[key] = self._created
        self._noted, self._created = [], None


_TOUCH = (
    runs.update()
    .where(runs.c.id == sa.bindparam("b_id"), runs.c.lease_token == sa.bindparam("b_token"))
    .values(updated_at=sa.bindparam("b_now"), seq=runs.c.seq + sa.bindparam("b_add", type_=sa.Integer))
    .returning(runs.c.cancel_requested, runs.c.seq)
)
"""The fence's first statement: the run row, touched under the lease token (one statement, compiled once)."""


_END = (
    runs.update()
    .where(runs.c.id == sa.bindparam("b_id"), runs.c.lease_token == sa.bindparam("b_token"))
    .values(updated_at=sa.bindparam("b_now"), seq=runs.c.seq + sa.bindparam("b_add", type_=sa.Integer))
    .returning(*runs.c)
)
"""The run's end, which is also its fence: sets the columns its other parameters name, built once."""

_STEPS = sa.select(steps).order_by(steps.c.started_at, steps.c.key)
"""A run's steps in the order they started (``where`` added)."""


def _upsert(dialect: Any) -> Any:
    """Write step rows (one parameter set each, every column): a new row is inserted, an existing one
    takes the new values except when it started."""
    insert = dialect.insert(steps)
    kept = ("run_id", "key", "started_at")
    return insert.on_conflict_do_update(
        index_elements=[steps.c.run_id, steps.c.key],
        set_={c.name: insert.excluded[c.name] for c in steps.c if c.name not in kept},
    )


def _step_row(key: str, tool: str, state: str, attempts: int, now: dt.datetime) -> dict[str, Any]:
    return {
        "key": key,
        "tool": tool,
        "state": state,
        "attempts": attempts,
        "seq": None,
        "output": None,
        "compensation": None,
        "error": None,
        "started_at": now,
        "finished_at": None,
    }


def _lost(run: Run) -> LeaseLost:
    return LeaseLost(
        f"pipeline run {run.id} is held by another worker now",
        hint="nothing to do: the worker holding it goes on",
    )


def _lease_key(run: Run) -> tuple[str, str | None]:
    return run.id, run.lease_token


def _mine(run: Run) -> sa.Update:
    return runs.update().where(runs.c.id == run.id, runs.c.lease_token == run.lease_token)


def _token(owner: str) -> str:
    return f"{owner[:40]}/{secrets.token_hex(8)}"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _run(row: Mapping[str, Any] | sa.RowMapping, *, steps: tuple[StepRecord, ...] | None = None) -> Run:
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
        steps=steps,
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
