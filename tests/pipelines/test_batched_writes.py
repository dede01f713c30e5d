"""On PostgreSQL the fenced writes of a process's runs go to the database together, one statement for all
the writes waiting (``pipelines/_pg.py``): each run still gets its own outcome — its lease checked, its
cancel seen, its key claimed — and a write the database refuses fails alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import asyncpg
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL
from toolbridge.errors import Conflict, LeaseLost, StorageError
from toolbridge.pipelines import _pg
from toolbridge.pipelines._store import Run, RunStore, Started
from toolbridge.pipelines._tables import pipeline_runs
from toolbridge.resilience._idempotency import IdempotencyStore
from toolbridge.storage import Database

from .test_store import Clock

pytestmark = pytest.mark.anyio


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, ...]]]:
    """The batched statements sent meanwhile, as the ids of the runs whose writes each carried."""
    sent: list[tuple[str, ...]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        if statement.startswith("WITH b AS"):
            sent.append(tuple(params[0]))  # $1: the runs' ids

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", seen)


async def stored_runs(store: RunStore, count: int, owner: str) -> list[Run]:
    runs = [await store.create("p", "local:op", {}, request_id=f"r{i}", owner=owner) for i in range(count)]
    for run in runs:  # stored by their first write, on its own
        await store.flush(run)
    return runs


async def test_the_writes_of_many_runs_go_together_each_with_its_own_outcome(postgres_url: str) -> None:
    clock = Clock()
    async with Database(postgres_url) as db:
        store, keys = RunStore(db, lease=30, clock=clock), IdempotencyStore(db)
        runs = await stored_runs(store, 20, "worker-a")
        clock.now += dt.timedelta(seconds=31)
        taken = await store.claim(runs[3].id, owner="worker-b")  # run 3's lease is someone else's now
        assert taken is not None
        clock.now += dt.timedelta(seconds=1)
        for run in runs:  # the others are still this worker's (a heartbeat renewed them)
            if run is not runs[3]:
                assert await store.renew(run)
        assert await store.cancel(runs[5].id, principal=None) is not None
        for i, run in enumerate(runs):
            assert await keys.claim("local:op", f"{run.id}-a", "svc.a", "d") is None  # its step's call
            store.note_done(
                run, "00.a", {"i": i}, None, tool="svc.a", attempts=1,
                then=keys.joined_completion("local:op", f"{run.id}-a", result={"value": i}),
            )  # fmt: skip
        outcomes: dict[int, Started | BaseException] = {}

        async def start(i: int, run: Run) -> None:
            claim = keys.joined_claim("local:op", f"{run.id}-b", "svc.b", "d", request_id="r")
            try:
                outcomes[i] = await store.step_started(run, "01.b", "svc.b", attempts=1, claim=claim)
            except LeaseLost as exc:
                outcomes[i] = exc

        with statements(db) as sent:
            async with anyio.create_task_group() as tg:
                for i, run in enumerate(runs):
                    tg.start_soon(start, i, run)
        assert len(sent) <= 3, f"{len(sent)} statements for 20 runs' writes"
        assert isinstance(outcomes.pop(3), LeaseLost)
        assert outcomes.pop(5) == Started(cancel_requested=True, claimed=False)
        assert set(outcomes.values()) == {Started(cancel_requested=False, claimed=True)}
        for i, run in enumerate(runs):
            records = {s.key: s for s in await store.steps(run.id)}
            if i == 3:  # fenced out: nothing of worker-a's written, its notes kept for forget_noted
                assert "01.b" not in records and len(store.forget_noted(run)) == 1
                continue
            assert (records["00.a"].state, records["00.a"].output, records["00.a"].seq) == (
                "done",
                {"i": i},
                1,
            )
            assert records["01.b"].state == "running"
            replay = await keys.claim("local:op", f"{run.id}-a", "svc.a", "d")
            assert replay is not None and replay.result == {"value": i}  # completed with the outcome
            if i == 5:  # the cancelled run claimed nothing
                assert await keys.claim("local:op", f"{run.id}-b", "svc.b", "d") is None
            else:
                with pytest.raises(Conflict):  # claimed with the step's start, in flight
                    await keys.claim("local:op", f"{run.id}-b", "svc.b", "d")


async def test_two_writes_of_one_run_at_once_are_both_made(postgres_url: str) -> None:
    """A ``for_each`` step's iterations start together: one statement changes a run's row once, so the
    second write goes in the next statement."""
    async with Database(postgres_url) as db:
        store = RunStore(db)
        (run,) = await stored_runs(store, 1, "worker-a")
        with statements(db) as sent:
            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(partial(store.step_started, run, f"00.each[{i}]", "svc.a", attempts=1))
        assert len(sent) == 4
        assert sorted(s.key for s in await store.steps(run.id)) == [f"00.each[{i}]" for i in range(4)]


async def test_a_write_the_database_refuses_fails_alone(postgres_url: str) -> None:
    async with Database(postgres_url) as db:
        store = RunStore(db)
        runs = await stored_runs(store, 5, "worker-a")
        failed: list[BaseException] = []

        async def start(run: Run, key: str) -> None:
            try:
                await store.step_started(run, key, "svc.a", attempts=1)
            except StorageError as exc:
                failed.append(exc)

        async with anyio.create_task_group() as tg:
            for i, run in enumerate(runs):
                tg.start_soon(start, run, "x" * 300 if i == 2 else "00.a")  # keys have 200 characters
        assert len(failed) == 1 and "value too long" in str(failed[0])
        for i, run in enumerate(runs):
            assert [s.key for s in await store.steps(run.id)] == ([] if i == 2 else ["00.a"])


async def test_a_writer_cancelled_before_its_write_was_sent_has_nothing_sent(postgres_url: str) -> None:
    async with Database(postgres_url) as db:
        store = RunStore(db)
        first, second = await stored_runs(store, 2, "worker-a")
        store.note_done(second, "00.a", {"n": 1}, None, tool="svc.a", attempts=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(store.step_started, first, "01.b", "svc.b", attempts=1))
            with anyio.fail_after(30):
                while not store._batcher or not store._batcher._sending:  # first's statement on its way
                    await anyio.lowlevel.checkpoint()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await store.step_started(second, "01.b", "svc.b", attempts=1)
        assert scope.cancelled_caught
        assert await store.steps(second.id) == []  # neither its start nor the outcome noted before
        await store.flush(second)  # the outcome was kept for the run's next write
        assert [(s.key, s.state) for s in await store.steps(second.id)] == [("00.a", "done")]


async def test_a_writer_sends_while_its_own_write_waits_not_for_writers_after_it(postgres_url: str) -> None:
    """The turn to send passes to the oldest write waiting once the sender's own write is answered: on a
    busy worker the queue need never empty, and the first writer would otherwise send for everyone."""
    async with Database(postgres_url) as db:
        store = RunStore(db)
        first, second = await stored_runs(store, 2, "worker-a")
        returned: dict[str, int] = {}

        async def start(run: Run, name: str, sent: list[tuple[str, ...]]) -> None:
            await store.step_started(run, "01.b", "svc.b", attempts=1)
            returned[name] = len(sent)  # statements sent by then

        with statements(db) as sent:
            async with db.engine.connect() as blocker, anyio.create_task_group() as tg:
                row = sa.select(pipeline_runs.c.id).where(pipeline_runs.c.id == first.id)
                await blocker.execute(row.with_for_update())  # first's statement waits for this lock
                tg.start_soon(start, first, "first", sent)
                with anyio.fail_after(30):
                    while not store._batcher or not store._batcher._sending:
                        await anyio.lowlevel.checkpoint()
                tg.start_soon(start, second, "second", sent)
                with anyio.fail_after(30):
                    while not store._batcher._waiting:  # second's write waits for the next statement
                        await anyio.lowlevel.checkpoint()
                await blocker.rollback()
        assert sent == [(first.id,), (second.id,)]
        assert returned == {"first": 1, "second": 2}


async def test_a_batch_that_fails_unexpectedly_leaves_no_writer_waiting(postgres_url: str) -> None:
    """A write the batch cannot even be built from (here a step row without its attempts) raises in the
    sender; the writers whose writes shared its statement get a StorageError instead of waiting forever."""
    async with Database(postgres_url) as db:
        store = RunStore(db)
        runs = await stored_runs(store, 3, "worker-a")
        batcher = store._batcher
        assert batcher is not None
        now = dt.datetime.now(dt.UTC)
        row = {"key": "00.a", "tool": "svc.a", "state": "running", "attempts": 1, "output": None}
        row |= {"compensation": None, "error": None, "started_at": now, "finished_at": None}
        broken = {k: v for k, v in row.items() if k != "attempts"}
        errors: list[BaseException] = []

        async def write(run: Run, step: dict[str, Any]) -> None:
            try:
                await batcher.write(_pg.Write(run.id, run.lease_token, now, [], step, [], None, None))
            except (KeyError, StorageError) as exc:
                errors.append(exc)

        with anyio.fail_after(30):
            async with db.engine.connect() as blocker, anyio.create_task_group() as tg:
                held = sa.select(pipeline_runs.c.id).where(pipeline_runs.c.id == runs[0].id)
                await blocker.execute(held.with_for_update())  # the first statement waits: the rest gather
                tg.start_soon(write, runs[0], row)
                while not batcher._sending:
                    await anyio.lowlevel.checkpoint()
                tg.start_soon(write, runs[1], broken)
                tg.start_soon(write, runs[2], row)
                while len(batcher._waiting) < 2:
                    await anyio.lowlevel.checkpoint()
                await blocker.rollback()
        assert sorted(type(e).__name__ for e in errors) == ["KeyError", "StorageError"]


async def test_a_database_out_of_reach_fails_a_batch_once_not_each_write(postgres_url: str) -> None:
    """Writes that cannot reach the database are not retried one by one (each would fail the same way):
    one connection attempt per batch, every writer told."""
    name = sa.make_url(postgres_url).database
    attempts: list[object] = []
    failed: list[BaseException] = []
    async with Database(postgres_url) as db:
        store = RunStore(db)
        runs = await stored_runs(store, 8, "worker-a")
        await db.engine.dispose()  # no pooled connection left

        async def start(run: Run) -> None:
            try:
                await store.step_started(run, "00.a", "svc.a", attempts=1)
            except StorageError as exc:
                failed.append(exc)

        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            sa.event.listen(db.engine.sync_engine, "do_connect", lambda *args: attempts.append(args))
            async with anyio.create_task_group() as tg:
                for run in runs:
                    tg.start_soon(start, run)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
    assert len(failed) == len(runs)
    assert 0 < len(attempts) < len(runs), "the batch was not retried write by write"
