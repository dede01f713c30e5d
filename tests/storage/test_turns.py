"""SQLite transactions of one process take turns (storage/_turns.py), against a real SQLite file."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa
from tests._patience import patience

from toolbridge.storage import Database
from toolbridge.storage._turns import Turns

pytestmark = pytest.mark.anyio

COUNTER = sa.text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")


async def counter_db(url: str) -> Database:
    db = Database(url)
    await db.__aenter__()
    async with db.transaction() as conn:
        await conn.execute(COUNTER)
        await conn.execute(sa.text("INSERT INTO counter VALUES (1, 0)"))
    assert db.turns is not None
    db.turns.stall = patience(10)  # a stall here is a bug, never a slow machine
    return db


async def increment(db: Database) -> None:
    """Read, yield to the loop, write: two tasks doing this at once without turns lose an update."""
    async with db.transaction() as conn:
        n = (await conn.execute(sa.text("SELECT n FROM counter WHERE id = 1"))).scalar_one()
        await anyio.lowlevel.checkpoint()
        await conn.execute(sa.text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})


async def count(db: Database) -> int:
    async with db.transaction() as conn:
        return int((await conn.execute(sa.text("SELECT n FROM counter"))).scalar_one())


async def test_concurrent_transactions_of_one_process_run_one_at_a_time(sqlite_url: str) -> None:
    db = await counter_db(sqlite_url)
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(increment, db)
        assert await count(db) == 60  # no update lost, none refused as "database is locked"
        assert db.turns is not None and db.turns.stalls == 0  # the queue kept moving
    finally:
        await db.__aexit__(None, None, None)


async def test_a_transaction_opened_inside_a_turn_does_not_queue_behind_it(sqlite_url: str) -> None:
    db = await counter_db(sqlite_url)
    try:
        async with db.transaction() as outer:
            await outer.execute(sa.text("UPDATE counter SET n = 5"))
            assert await count(db) == 0  # the same task: a second connection, the committed value

            async def child(into: list[int]) -> None:
                into.append(await count(db))

            seen: list[int] = []
            async with anyio.create_task_group() as tg:  # tasks it starts share its turn
                tg.start_soon(child, seen)
                tg.start_soon(child, seen)
            assert seen == [0, 0]
        assert db.turns is not None and db.turns.stalls == 0  # nobody waited for the turn they were in
        assert await count(db) == 5
    finally:
        await db.__aexit__(None, None, None)


async def test_a_holder_waiting_on_another_task_lets_that_task_go_ahead(sqlite_url: str) -> None:
    """The holder waits for a task it did not start that needs a transaction: the turn stalls, and the
    waiter goes ahead without it instead of waiting forever."""
    db = await counter_db(sqlite_url)
    assert db.turns is not None
    db.turns.stall = 0.05
    go, read = anyio.Event(), anyio.Event()
    seen: list[int] = []

    async def reader() -> None:  # started before the turn: not part of it
        await go.wait()
        seen.append(await count(db))
        read.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            async with db.transaction():
                go.set()
                with anyio.fail_after(patience(30)):
                    await read.wait()
        assert seen == [0] and db.turns.stalls == 1
    finally:
        await db.__aexit__(None, None, None)


async def test_a_waiter_cancelled_in_the_queue_leaves_it_whole() -> None:
    turns = Turns(stall=patience(10))
    first = await turns.take()
    order: list[str] = []

    async def wait(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            token = await turns.take()
            try:
                order.append(name)
            finally:
                turns.give_back(token)

    gone = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "cancelled", gone)
        await anyio.wait_all_tasks_blocked()
        gone.cancel()
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait, "second", anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait, "third", anyio.CancelScope())
        await anyio.wait_all_tasks_blocked()
        turns.give_back(first)
    assert order == ["second", "third"] and turns.stalls == 0


@pytest.mark.parametrize("cancel_first", [False, True])
async def test_a_waiter_cancelled_as_it_is_handed_the_turn_passes_it_on(cancel_first: bool) -> None:
    turns = Turns(stall=patience(10))
    first = await turns.take()
    got: list[str] = []
    scope = anyio.CancelScope()

    async def doomed() -> None:  # as Database.transaction uses a turn
        with scope:
            token = await turns.take()
            try:
                await anyio.lowlevel.checkpoint()
                got.append("doomed")
            finally:
                turns.give_back(token)

    async with anyio.create_task_group() as tg:
        tg.start_soon(doomed)
        await anyio.wait_all_tasks_blocked()
        if cancel_first:  # in one tick: doomed is cancelled, then handed the turn before it runs
            scope.cancel()
            turns.give_back(first)
        else:  # handed the turn, then cancelled before it runs
            turns.give_back(first)
            scope.cancel()
    with anyio.fail_after(patience(30)):
        token = await turns.take()  # would wait forever if doomed had kept the turn
    assert token is not None and got == [] and turns.stalls == 0
