"""Runs' fenced writes on PostgreSQL: one statement for many runs, sent on its own (group commit).

A fenced write (``_store._Fence``) touches the run row under the lease token, then writes the step rows
(the outcomes noted since the run's last write and the caller's own row), completes the idempotency keys
joined to those outcomes and, for a step's start, claims the step's key; a run's end sets its final state
in the touch. As separate statements in a transaction that is six round trips, each through SQLAlchemy's
execution path, and a commit each. Here it is one statement of data-modifying CTEs, atomic on its own
(every part sees one snapshot; everything commits or nothing does), for every run that has a write
waiting: a worker's runs each wait for their write before their next effect, so while one statement is
on its way the others' writes gather for the next (:class:`Batcher`). Each part after the touch joins
the touched runs, so a run whose lease is gone (its touch matched no row) has nothing written and gets
no row back; the claim also reads the touch, so a run whose cancel was asked for claims nothing.

Everything goes in as arrays (``unnest``), so the statement's text is the same whatever the batch holds:
PostgreSQL and asyncpg prepare it once per connection. JSON values are sent as text (``json.dumps``, as
SQLAlchemy's JSON type does, in the caller's task so a value that cannot be stored fails its own write)
and cast; a Python ``None`` becomes SQL NULL, which reads back as ``None`` as JSON ``null`` did.

PostgreSQL changes a row once per statement: a batch holds one write per run (another write of the same
run, from a ``for_each`` step, goes in the next batch), and a write whose completions and claim name the
same key (which the engine never makes) goes the way of SQLite (:func:`fits`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import sqlalchemy as sa

from toolbridge.errors import StorageError
from toolbridge.pipelines._tables import pipeline_runs
from toolbridge.resilience._idempotency import JoinedClaim, JoinedCompletion
from toolbridge.storage import Database

__all__ = ["Batcher", "Write", "fits"]

_BATCH = 64
"""Writes per statement at most."""

_STATEMENT = sa.text(
    """WITH b AS (
  SELECT * FROM unnest(
    CAST(:b_ids AS text[]), CAST(:b_tokens AS text[]), CAST(:b_now AS timestamptz[]),
    CAST(:b_noted AS int[]), CAST(:b_ends AS boolean[]), CAST(:b_states AS text[]),
    CAST(:b_outputs AS text[]), CAST(:b_errors AS text[])
  ) AS b(id, token, now, noted, ends, e_state, e_output, e_error)
),
touched AS (
  UPDATE pipeline_runs AS r SET
    updated_at = b.now, seq = r.seq + b.noted,
    state = CASE WHEN b.ends THEN b.e_state ELSE r.state END,
    lease_until = CASE WHEN b.ends THEN NULL ELSE r.lease_until END,
    lease_token = CASE WHEN b.ends THEN NULL ELSE r.lease_token END,
    output = CASE WHEN b.ends THEN CAST(b.e_output AS json) ELSE r.output END,
    error = CASE WHEN b.ends AND b.e_error IS NOT NULL THEN CAST(b.e_error AS json) ELSE r.error END
  FROM b WHERE r.id = b.id AND r.lease_token = b.token
  RETURNING r.*, b.noted AS noted
),
written AS (
  INSERT INTO pipeline_steps AS s
    (run_id, key, tool, state, attempts, seq, output, compensation, error, started_at, finished_at)
  SELECT u.run_id, u.key, u.tool, u.state, u.attempts,
         CASE WHEN u.pos IS NOT NULL THEN t.seq - t.noted + u.pos END,
         CAST(u.output AS json), CAST(u.compensation AS json), CAST(u.error AS json),
         u.started_at, u.finished_at
  FROM unnest(
    CAST(:s_runs AS text[]), CAST(:s_keys AS text[]), CAST(:s_tools AS text[]), CAST(:s_states AS text[]),
    CAST(:s_attempts AS int[]), CAST(:s_outputs AS text[]), CAST(:s_compensations AS text[]),
    CAST(:s_errors AS text[]), CAST(:s_started AS timestamptz[]), CAST(:s_finished AS timestamptz[]),
    CAST(:s_pos AS int[])
  ) AS u(run_id, key, tool, state, attempts, output, compensation, error, started_at, finished_at, pos)
  JOIN touched AS t ON t.id = u.run_id
  ON CONFLICT (run_id, key) DO UPDATE SET
    tool = excluded.tool, state = excluded.state, attempts = excluded.attempts, seq = excluded.seq,
    output = excluded.output, compensation = excluded.compensation, error = excluded.error,
    finished_at = excluded.finished_at
),
completed AS (
  UPDATE idempotency_records AS r
  SET state = 'done', outcome = CAST(c.outcome AS json), lease_until = NULL
  FROM unnest(
    CAST(:c_runs AS text[]), CAST(:c_principals AS text[]), CAST(:c_keys AS text[]),
    CAST(:c_outcomes AS text[])
  ) AS c(run_id, principal, key, outcome)
  JOIN touched AS t ON t.id = c.run_id
  WHERE r.principal = c.principal AND r.key = c.key
),
k AS (
  SELECT * FROM unnest(
    CAST(:k_runs AS text[]), CAST(:k_principals AS text[]), CAST(:k_keys AS text[]), CAST(:k_tools AS text[]),
    CAST(:k_digests AS text[]), CAST(:k_created AS timestamptz[]), CAST(:k_expires AS timestamptz[]),
    CAST(:k_owners AS text[]), CAST(:k_leases AS timestamptz[]), CAST(:k_request_ids AS text[])
  ) AS k(run_id, principal, key, tool, digest, created_at, expires_at, owner, lease_until, request_id)
),
claimed AS (
  INSERT INTO idempotency_records AS r
    (principal, key, tool, request_digest, state, outcome, created_at, expires_at, owner, lease_until,
     request_id)
  SELECT k.principal, k.key, k.tool, k.digest, 'in_flight', NULL, k.created_at, k.expires_at, k.owner,
         k.lease_until, k.request_id
  FROM k JOIN touched AS t ON t.id = k.run_id
  WHERE NOT t.cancel_requested
  ON CONFLICT (principal, key) DO UPDATE SET
    owner = excluded.owner, lease_until = excluded.lease_until, request_id = excluded.request_id
  WHERE r.state = 'in_flight' AND r.tool = excluded.tool AND r.request_digest = excluded.request_digest
  RETURNING r.principal, r.key
)
SELECT t.*, EXISTS (
  SELECT 1 FROM k JOIN claimed AS c ON c.principal = k.principal AND c.key = k.key WHERE k.run_id = t.id
) AS claimed
FROM touched AS t"""
).columns(*pipeline_runs.c, sa.column("noted", sa.Integer), sa.column("claimed", sa.Boolean))
"""The batch's statement (module docstring); returns each run touched, as stored, and its claim's fate."""


@dataclass(slots=True, eq=False)
class Write:
    """One run's fenced write: its touch (or end), step rows, key completions and key claim."""

    run_id: str
    token: str | None
    now: Any
    noted: Sequence[Mapping[str, Any]]
    """Step outcomes noted since the run's last write, numbered after the run's ``seq`` in this order."""
    row: Mapping[str, Any] | None
    completions: Sequence[JoinedCompletion]
    claim: JoinedClaim | None
    end: Mapping[str, Any] | None
    """The run's end: ``state``, ``output``, ``error`` (the lease given up)."""
    encoded: dict[str, Any] = field(default_factory=dict)
    done: anyio.Event = field(default_factory=anyio.Event)
    wake: anyio.Event = field(default_factory=anyio.Event)
    """Set when the write is answered or its task is to send the next statement."""
    result: sa.RowMapping | None = None
    error: BaseException | None = None

    def answered(self) -> None:
        self.done.set()
        self.wake.set()

    def encode(self) -> None:
        """The JSON values as text, in the caller's task (a value that cannot be stored fails here)."""
        rows = [*self.noted, self.row] if self.row is not None else list(self.noted)
        end = self.end or {}
        self.encoded = {
            "rows": rows,
            "outputs": [_json(r["output"]) for r in rows],
            "compensations": [_json(r["compensation"]) for r in rows],
            "errors": [_json(r["error"]) for r in rows],
            "c_outcomes": [_json(c.outcome) for c in self.completions],
            "e_output": _json(end.get("output")),
            "e_error": _json(end.get("error")),
        }


def fits(completions: Sequence[JoinedCompletion | None], claim: JoinedClaim | None) -> bool:
    """Whether these joined writes can go in the statement (no key changed twice)."""
    keys = [(c.principal, c.key) for c in completions if c is not None]
    if claim is not None:
        keys.append((claim.row["principal"], claim.row["key"]))
    return len(set(keys)) == len(keys)


class Batcher:
    """Sends waiting writes together. A writer that finds no statement on its way sends one with the
    writes waiting (one per run, oldest first); the others wait. When that statement is answered, the
    sender passes the turn to the oldest write still waiting, whose task sends the next statement — so a
    writer sends while its own write waits, never for others after it (a busy worker's queue need never
    empty). The sending is shielded from cancellation (the statement carries others' writes), bounded by
    ``timeout``; a writer cancelled while waiting passes the turn on if it was given it."""

    def __init__(self, database: Database, *, timeout: float = 30.0) -> None:
        self._db = database
        self._timeout = timeout
        self._waiting: list[Write] = []
        self._sending = False

    async def write(self, write: Write) -> sa.RowMapping | None:
        """The run as stored after ``write`` (with ``claimed``), or None when its lease is gone."""
        write.encode()
        self._waiting.append(write)
        try:
            while not write.done.is_set():
                if self._sending:
                    await write.wake.wait()  # its write answered, or the turn to send
                    write.wake = anyio.Event()
                    continue
                self._sending = True
                batch = self._next_batch()
                try:
                    with anyio.CancelScope(shield=True):
                        await self._send(batch)
                finally:
                    self._sending = False
                    _unanswered(batch)  # _send raised what it does not expect: its waiters are not left
                    self._pass_turn()
        finally:
            if not write.done.is_set() and write in self._waiting:
                self._waiting.remove(write)  # cancelled before it was sent: never sent
                if not self._sending:
                    self._pass_turn()  # it may have been given the turn
        if write.error is not None:
            raise write.error
        return write.result

    def _next_batch(self) -> list[Write]:
        batch: list[Write] = []
        runs: set[str] = set()
        later: list[Write] = []
        for write in self._waiting:
            if write.run_id in runs or len(batch) >= _BATCH:
                later.append(write)
            else:
                runs.add(write.run_id)
                batch.append(write)
        self._waiting = later
        return batch

    def _pass_turn(self) -> None:
        if self._waiting:
            self._waiting[0].wake.set()

    async def _send(self, batch: list[Write]) -> None:
        try:
            with anyio.fail_after(self._timeout):
                async with self._db.autocommit() as conn:
                    found = {r["id"]: r for r in (await conn.execute(_STATEMENT, _params(batch))).mappings()}
        except (StorageError, TimeoutError) as exc:
            if len(batch) > 1 and isinstance(exc, StorageError) and exc.refused_statement:
                # whose write was it: each on its own (not when unreachable: each would fail the same way)
                for write in batch:
                    await self._send([write])
                return
            error = (
                exc
                if isinstance(exc, StorageError)
                else StorageError(
                    f"the database did not answer within {self._timeout:g} s",
                    hint="the database may be overloaded or down; the run resumes when it answers",
                )
            )
            for write in batch:
                write.error = error
                write.answered()
            return
        for write in batch:
            write.result = found.get(write.run_id)
            write.answered()


def _unanswered(batch: Sequence[Write]) -> None:
    """Answer the writes of a batch whose sending failed unexpectedly (the sender raises the error)."""
    for write in batch:
        if not write.done.is_set():
            write.error = StorageError(
                "a batch of pipeline writes failed unexpectedly (see the log)",
                hint="the run resumes when its lease runs out",
            )
            write.answered()


def _params(batch: Sequence[Write]) -> dict[str, Any]:
    params: dict[str, list[Any]] = {
        name: []
        for name in (
            *("b_ids", "b_tokens", "b_now", "b_noted", "b_ends", "b_states", "b_outputs", "b_errors"),
            *("s_runs", "s_keys", "s_tools", "s_states", "s_attempts", "s_outputs", "s_compensations"),
            *("s_errors", "s_started", "s_finished", "s_pos", "c_runs", "c_principals", "c_keys"),
            *("c_outcomes", "k_runs", "k_principals", "k_keys", "k_tools", "k_digests", "k_created"),
            *("k_expires", "k_owners", "k_leases", "k_request_ids"),
        )
    }
    for w in batch:
        e = w.encoded
        _add(params, b_ids=w.run_id, b_tokens=w.token, b_now=w.now, b_noted=len(w.noted))
        _add(params, b_ends=w.end is not None, b_states=(w.end or {}).get("state"))
        _add(params, b_outputs=e["e_output"], b_errors=e["e_error"])
        for i, r in enumerate(e["rows"]):
            _add(params, s_runs=w.run_id, s_keys=r["key"], s_tools=r["tool"], s_states=r["state"])
            _add(params, s_attempts=r["attempts"], s_outputs=e["outputs"][i])
            _add(params, s_compensations=e["compensations"][i], s_errors=e["errors"][i])
            _add(params, s_started=r["started_at"], s_finished=r["finished_at"])
            _add(params, s_pos=i + 1 if i < len(w.noted) else None)
        for c, outcome in zip(w.completions, e["c_outcomes"], strict=True):
            _add(params, c_runs=w.run_id, c_principals=c.principal, c_keys=c.key, c_outcomes=outcome)
        if w.claim is not None:
            k = w.claim.row
            _add(params, k_runs=w.run_id, k_principals=k["principal"], k_keys=k["key"], k_tools=k["tool"])
            _add(params, k_digests=k["request_digest"], k_created=k["created_at"])
            _add(params, k_expires=k["expires_at"], k_owners=k["owner"], k_leases=k["lease_until"])
            _add(params, k_request_ids=k["request_id"])
    return params


def _add(params: dict[str, list[Any]], **values: Any) -> None:
    for name, value in values.items():
        params[name].append(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
