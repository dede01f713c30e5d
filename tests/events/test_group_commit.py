"""Concurrent appends share transactions (group commit) and each one still gets its own, exact answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import asyncpg
import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_ADMIN_URL
from toolbridge.errors import StorageError
from toolbridge.events import EventLog, NewEvent, Recorded
from toolbridge.events._tables import event_deliveries
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
async def log(database_url: str) -> AsyncIterator[EventLog]:
    async with Database(database_url) as db:
        log = EventLog(db, fanout=lambda e: [("mirror", "webhook")] if e.type == "push" else [])
        yield log


async def appended(log: EventLog, news: list[NewEvent]) -> list[Recorded | StorageError]:
    """Every append at once (they queue behind one writer and share its transactions)."""
    answers: list[Recorded | StorageError | None] = [None] * len(news)

    async def one(i: int, new: NewEvent) -> None:
        try:
            answers[i] = await log.append(new)
        except StorageError as exc:
            answers[i] = exc

    async with anyio.create_task_group() as tg:
        for i, new in enumerate(news):
            tg.start_soon(one, i, new)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


async def test_concurrent_deliveries_are_stored_once_each_with_duplicates_answered_by_the_first(
    log: EventLog,
) -> None:
    before = await log.append(NewEvent("github", "push", "r", {"n": -1}, "d-old"))
    news = [NewEvent("github", "push", "r", {"n": n}, f"d-{n % 40}") for n in range(80)]
    news += [NewEvent("github", "push", "r", {"n": "again"}, "d-old"), NewEvent("toolbridge.x", "tick")]
    answers = await appended(log, news)
    recorded = [a for a in answers if isinstance(a, Recorded)]
    assert len(recorded) == len(news)
    for key in range(40):  # the two deliveries with one id: one stored, the other answered with its id
        pair = [recorded[key], recorded[key + 40]]
        assert sorted(r.duplicate for r in pair) == [False, True]
        assert pair[0].event.id == pair[1].event.id
        assert pair[0].event.payload["n"] in (key, key + 40)
    assert recorded[80].duplicate and recorded[80].event.id == before.event.id
    assert not recorded[81].duplicate
    stored = await log.tail(200)
    assert len(stored) == 1 + 40 + 1
    assert len({e.seq for e in stored}) == len({e.id for e in stored}) == len(stored)
    async with log.database.transaction() as conn:
        planned = (await conn.execute(sa.select(sa.func.count()).select_from(event_deliveries))).scalar()
    assert planned == 1 + 40  # one delivery per stored push, none for a duplicate


async def test_an_event_that_cannot_be_stored_fails_alone(log: EventLog) -> None:
    news = [NewEvent("github", "push", "r", {"n": n}, f"ok-{n}") for n in range(20)]
    news.insert(7, NewEvent("github", "push", "r", {"bad": {1, 2}}, "bad"))  # a set is not JSON
    answers = await appended(log, news)
    assert isinstance(answers[7], StorageError)
    assert all(isinstance(a, Recorded) and not a.duplicate for i, a in enumerate(answers) if i != 7)
    assert len(await log.tail(100)) == 20


async def test_batches_committing_at_once_store_each_delivery_id_once(database_url: str) -> None:
    """Two logs on one database (two replicas; on PostgreSQL each also commits several batches at once):
    the same delivery ids arriving at both are stored once, every other copy answered with that event."""
    async with Database(database_url) as db_a, Database(database_url) as db_b:
        logs = [EventLog(db_a), EventLog(db_b)]
        news = [NewEvent("github", "push", "r", {"n": n}, f"d-{n % 50}") for n in range(200)]
        answers: list[Recorded | None] = [None] * len(news)

        async def one(i: int) -> None:
            answers[i] = await logs[i % 2].append(news[i])

        async with anyio.create_task_group() as tg:
            for i in range(len(news)):
                tg.start_soon(one, i)
        stored = await logs[0].tail(500)
    assert len(stored) == 50
    by_key = {e.payload["n"] % 50: e.id for e in stored}
    assert len(by_key) == 50
    for i, answer in enumerate(answers):
        assert answer is not None
        assert answer.event.id == by_key[i % 50]
    assert sum(not a.duplicate for a in answers if a is not None) == 50


async def test_a_database_out_of_reach_fails_a_batch_once_not_each_event(postgres_url: str) -> None:
    """A batch that cannot reach the database is not retried event by event (each would fail the same
    way, N connection attempts where one tells): every append gets the error."""
    name = sa.make_url(postgres_url).database
    attempts: list[object] = []
    async with Database(postgres_url) as db:
        log = EventLog(db)
        await log.append(NewEvent("test", "reachable"))
        await db.engine.dispose()  # no pooled connection left
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            sa.event.listen(db.engine.sync_engine, "do_connect", lambda *args: attempts.append(args))
            news = [NewEvent("github", "push", "r", {"n": n}, f"d-{n}") for n in range(40)]
            answers = await appended(log, news)
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
    assert all(isinstance(a, StorageError) for a in answers)
    assert 0 < len(attempts) < len(news), "the batches were not retried event by event"
