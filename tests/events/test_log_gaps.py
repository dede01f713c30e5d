"""Readers of the event log never pass an event that is still being committed.

On PostgreSQL a seq is handed out before its transaction commits, so a reader can see seq 2 while seq 1 is
still in flight. Passing that gap loses seq 1 for every cursor (an agent polling a subscription, the
announcer): it becomes visible behind them. These tests hold an append open in another process's place (a
second Database) for as long as they like; no clock decides the outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
import sqlalchemy as sa

from tests._patience import patience
from toolbridge.events import Event, EventLog, NewEvent
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
async def databases(postgres_url: str) -> AsyncIterator[tuple[Database, Database]]:
    async with Database(postgres_url) as writer, Database(postgres_url) as reader:
        yield writer, reader


class _Abandoned(Exception):
    pass


async def rolled_back_append(db: Database, log: EventLog) -> None:
    """An append whose transaction rolls back: the seq it was handed stays unused for good."""
    try:
        async with db.transaction() as conn:
            await log.append_in(conn, NewEvent("test", "rolled back"))
            raise _Abandoned
    except _Abandoned:
        pass


async def test_a_reader_waits_for_an_append_in_flight_below_a_visible_event(
    databases: tuple[Database, Database],
) -> None:
    writer_db, reader_db = databases
    slow, fast, reader = EventLog(writer_db), EventLog(reader_db), EventLog(reader_db)
    got: list[int] = []
    cursor = 0

    async def read_until_later() -> None:  # as an agent polling its subscription does
        nonlocal cursor
        while cursor < later.event.seq:
            found, cursor = await reader.after(cursor)
            got.extend(e.seq for e in found)
            await anyio.sleep(0.05)

    async with anyio.create_task_group() as tg:
        async with writer_db.transaction() as conn:
            held = await slow.append_in(conn, NewEvent("test", "held"))  # not committed yet
            later = await fast.append(NewEvent("test", "later"))  # committed
            assert held.event.seq < later.event.seq
            tg.start_soon(read_until_later)
            # Answering [later] now would move the reader's cursor past held for good. An unfenced reader
            # did so once the gap was 2 s old; a fenced one waits for this commit. The wait below only
            # bounds the first case (longer is never wrong).
            with anyio.move_on_after(3.0):
                while not got:  # noqa: ASYNC110  # the reader runs in its own task; bounded
                    await anyio.sleep(0.05)
        with anyio.fail_after(patience(30)):
            while cursor < later.event.seq:  # noqa: ASYNC110  # the reader task reads on
                await anyio.sleep(0.05)
    assert got == [held.event.seq, later.event.seq]


async def test_a_rolled_back_append_leaves_a_gap_readers_pass(databases: tuple[Database, Database]) -> None:
    writer_db, reader_db = databases
    log, reader = EventLog(writer_db), EventLog(reader_db)

    await rolled_back_append(writer_db, log)
    kept = await log.append(NewEvent("test", "kept"))
    assert kept.event.seq > 1, "the rolled-back append used seq 1"
    found, cursor = await reader.after(0)
    assert (found, cursor) == ([], 0), "first seen, a gap may be an append about to commit"
    with anyio.fail_after(patience(30)):
        found, cursor = await reader.after(0)
    assert [e.seq for e in found] == [kept.event.seq] and cursor == kept.event.seq
    # read again from the start: the gap is known to be for good, and the answer is the same
    found, cursor = await reader.after(0)
    assert [e.seq for e in found] == [kept.event.seq]


async def test_many_readers_at_one_gap(databases: tuple[Database, Database]) -> None:
    """Many pollers of one process at the same rolled-back gap all pass it, and hold no lock after."""
    writer_db, reader_db = databases
    log, reader = EventLog(writer_db), EventLog(reader_db)
    await rolled_back_append(writer_db, log)
    kept = await log.append(NewEvent("test", "kept"))
    answers: list[list[int]] = []

    async def poll() -> None:
        found: list[Event] = []
        while not found:
            found, _ = await reader.after(0)
        answers.append([e.seq for e in found])

    with anyio.fail_after(patience(30)):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(poll)
    assert answers == [[kept.event.seq]] * 20
    async with reader_db.transaction() as conn:
        locks = await conn.execute(  # this database's only: the server is shared with other tests
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        assert locks.scalar_one() == 0, "no advisory lock outlives its transaction"


async def test_a_reader_whose_wait_runs_out_answers_what_precedes_the_gap(
    databases: tuple[Database, Database],
) -> None:
    """An append held open longer than the reader's ``fence_wait`` (a long workspace transaction): the
    reader answers the events before the gap, not an error and not the events after it."""
    writer_db, reader_db = databases
    log, reader = EventLog(writer_db), EventLog(reader_db, fence_wait=0.2)
    first = await log.append(NewEvent("test", "first"))
    async with writer_db.transaction() as conn:
        held = await log.append_in(conn, NewEvent("test", "held"))
        later = await log.append(NewEvent("test", "later"))
        for _ in range(2):  # seen once, then waited for (fence_wait) in vain
            found, cursor = await reader.after(0)
            assert [e.seq for e in found] == [first.event.seq] and cursor == first.event.seq
    found, cursor = await reader.after(cursor)
    assert [e.seq for e in found] == [held.event.seq, later.event.seq]


async def test_from_now_on_waits_for_the_appends_in_flight(databases: tuple[Database, Database]) -> None:
    """``head()`` is where a new subscription starts ("from now on"): read while an append below it is
    still in flight, that event would commit after the start and below the cursor, never seen."""
    writer_db, reader_db = databases
    log, reader = EventLog(writer_db), EventLog(reader_db)
    heads: list[tuple[int, bool]] = []
    open_tx = False

    async def start_subscription() -> None:
        top = await reader.head()
        heads.append((top, open_tx))

    async with anyio.create_task_group() as tg, writer_db.transaction() as conn:
        open_tx = True
        held = await log.append_in(conn, NewEvent("test", "held"))
        later = await log.append(NewEvent("test", "later"))
        tg.start_soon(start_subscription)
        with anyio.move_on_after(1.0):  # bounds the unfenced case (it answers at once)
            while not heads:  # noqa: ASYNC110  # the reader runs in its own task
                await anyio.sleep(0.05)
        open_tx = False
    ((top, while_open),) = heads
    assert not while_open, "the start was read while an append below it was in flight"
    assert top == later.event.seq > held.event.seq
