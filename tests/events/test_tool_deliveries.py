"""Tool deliveries retried: after another worker took the row over, and after an upstream failure.

A delivery's lease (60 s) can run out while its tool call runs (the call deadline is 60 s as well, and
credentials are resolved before it starts). Another worker process then leases the row again and calls the
tool with the same idempotency key (``event-<delivery id>``), which answers 409 while the first call runs.
The delivery must then be tried again later — when the key replays the first call's outcome — never be
marked failed for good, which would leave the first worker unable to record its outcome (its lease is gone)
and lose the retry of a call that failed. Two hubs on one database play the two worker processes.

The hub stores a keyed call's failure under its key; a delivery retried after an upstream failure must call
the tool again (when that is safe), not replay the stored failure until its schedule is used up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
import sqlalchemy as sa

from tests._patience import patience
from toolbridge import Hub
from toolbridge.errors import UpstreamStatusError
from toolbridge.events import EventFilter, EventLog, EventService, NewEvent, Subscription, ToolTarget
from toolbridge.events._deliveries import Deliveries
from toolbridge.events._tables import event_deliveries
from toolbridge.events._worker import DeliveryWorker
from toolbridge.resilience import Resilience

from .conftest import Clock

pytestmark = pytest.mark.anyio

SUB = Subscription(
    "tickets", EventFilter(type="push"), tool=ToolTarget("tickets.create", {"n": "{payload.n}"}, "runner")
)


class Upstream:
    """The tool's upstream: answers once the test lets it (the first call is held open)."""

    def __init__(self, *, failing: bool = False) -> None:
        self.failing = failing
        self.calls: list[int] = []
        self.started = anyio.Event()
        self.answer = anyio.Event()
        self.on_call: Callable[[], None] = lambda: None

    async def create(self, n: int) -> dict[str, str]:
        self.calls.append(n)
        self.on_call()
        self.started.set()
        await self.answer.wait()
        if self.failing:
            raise UpstreamStatusError("the ticket service is busy", upstream_status=503)
        return {"id": f"T{n}"}


async def lease_until(worker: DeliveryWorker, delivery_id: str) -> dt.datetime:
    query = sa.select(event_deliveries.c.lease_until).where(event_deliveries.c.id == delivery_id)
    async with worker._hub.database.transaction() as conn:
        until = (await conn.execute(query)).scalar_one()
    return until if until.tzinfo is not None else until.replace(tzinfo=dt.UTC)  # SQLite drops the zone


async def no_sleep(_seconds: float) -> None:
    """The hub's backoff between its own attempts, removed (the test counts calls, not time)."""


@asynccontextmanager
async def worker_process(
    url: str, upstream: Upstream, *, lease: float = 60.0, clock: Clock | None = None
) -> AsyncIterator[tuple[DeliveryWorker, Clock]]:
    hub = Hub(database=url, resilience=Resilience(sleep=no_sleep))

    @hub.tool(connector="tickets", idempotent=True)
    async def create(n: int) -> dict[str, str]:
        """Open a ticket."""
        return await upstream.create(n)

    clock = clock or Clock()
    deliveries = Deliveries(hub.database, clock=clock, lease=lease)
    service = EventService(
        EventLog(hub.database, clock=clock), subscriptions={SUB.name: SUB}, deliveries=deliveries
    )
    hub.event_service = service
    async with hub:
        yield DeliveryWorker(hub, service, deliveries), clock


@asynccontextmanager
async def two_workers(
    url: str, upstream: Upstream, *, lease: float = 60.0
) -> AsyncIterator[tuple[DeliveryWorker, DeliveryWorker, Clock]]:
    """Two worker processes on one database and one clock, and an event whose delivery calls the tool."""
    clock = Clock()
    async with (
        worker_process(url, upstream, lease=lease, clock=clock) as (first, _),
        worker_process(url, upstream, lease=lease, clock=clock) as (second, _),
    ):
        await first._hub.agents.create("runner", ["tickets.*"])
        await first._service.log.append(NewEvent("github", "push", "octo/hello", {"n": 7}))
        yield first, second, clock


async def test_a_delivery_taken_over_while_its_call_runs_is_tried_again_not_failed(database_url: str) -> None:
    upstream = Upstream()
    async with two_workers(database_url, upstream) as (first, second, later):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run_once)
            with anyio.fail_after(patience(10)):
                await upstream.started.wait()
            later.now += 61  # the first worker's lease has run out; its call still runs
            assert await second.run_once() == 1  # leased again: the key answers 409 (in flight)
            (item,) = await second.deliveries.items()
            assert item.state == "queued", item.last_error  # to be tried again, not failed for good
            assert item.attempts == 1  # the attempt that met the key in flight used none up
            upstream.answer.set()
        later.now += 3600
        assert await second.run_once() == 1  # the key replays the first call's outcome
        (item,) = await second.deliveries.items()
        assert item.state == "done" and upstream.calls == [7]


async def test_a_tool_delivery_retried_after_an_upstream_failure_calls_the_tool_again(
    database_url: str,
) -> None:
    upstream = Upstream(failing=True)
    upstream.answer.set()
    async with worker_process(database_url, upstream) as (worker, clock):
        await worker._hub.agents.create("runner", ["tickets.*"])
        await worker._service.log.append(NewEvent("github", "push", "octo/hello", {"n": 7}))
        assert await worker.run_once() == 1  # the call fails after the hub's own retries
        tried = len(upstream.calls)
        (item,) = await worker.deliveries.items()
        assert item.state == "queued" and tried >= 1
        upstream.failing = False  # the ticket service is back
        clock.now += 3600
        assert await worker.run_once() == 1
        (item,) = await worker.deliveries.items()
        assert len(upstream.calls) == tried + 1, (
            "the retry replayed the stored failure, the tool was not called"
        )
        assert item.state == "done"


async def test_a_tool_removed_while_its_delivery_fails_upstream_keeps_the_failure_and_is_retried(
    database_url: str,
) -> None:
    """The failure handler asked whether the call was safe to repeat by looking the tool up again: a
    connector removed meanwhile raised ToolNotFound out of the worker instead of scheduling the retry."""
    upstream = Upstream(failing=True)
    upstream.answer.set()
    async with worker_process(database_url, upstream) as (worker, clock):
        hub = worker._hub
        await hub.agents.create("runner", ["tickets.*"])
        await worker._service.log.append(NewEvent("github", "push", "octo/hello", {"n": 7}))
        upstream.on_call = lambda: hub.catalog.remove_connector("tickets")  # an operator removes it
        assert await worker.run_once() == 1  # the hub's own retries included
        tried = len(upstream.calls)
        (item,) = await worker.deliveries.items()
        assert item.state == "queued" and item.attempts == 1, item.last_error  # retried on schedule
        clock.now += 3600
        assert await worker.run_once() == 1
        (item,) = await worker.deliveries.items()
        assert item.state == "failed" and "tickets.create" in str(item.last_error)  # the tool is gone
        assert len(upstream.calls) == tried


async def test_a_worker_renews_the_lease_of_a_delivery_while_its_call_runs(database_url: str) -> None:
    """Without a heartbeat a call longer than the lease let another worker lease the row again; now the
    worker renews it every third of the lease (0.3 s here, on the test's clock; 0.1 s real time)."""
    upstream = Upstream()
    async with two_workers(database_url, upstream, lease=0.3) as (first, second, clock):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run_once)
            with anyio.fail_after(patience(10)):
                await upstream.started.wait()
            (item,) = await first.deliveries.items()
            clock.now += 61  # the first lease ran out long ago
            with anyio.fail_after(patience(10)):  # a beat after the clocks moved renews the lease
                moved = dt.datetime.fromtimestamp(clock.now, dt.UTC)
                while await lease_until(first, item.id) <= moved:  # noqa: ASYNC110  # a row: bounded polling
                    await anyio.sleep(0.05)
            assert await second.run_once() == 0  # renewed: nobody else leases it
            upstream.answer.set()
        (item,) = await first.deliveries.items()
        assert item.state == "done" and item.attempts == 1 and upstream.calls == [7]


async def test_a_lease_lost_while_its_call_runs_is_reported_once_and_no_longer_renewed(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The heartbeat warned "lease lost" at every beat until the call ended (every 20 s of a 60 s call) and
    kept asking the database to renew a row another worker holds. Two deliveries run at once; one is
    taken over (its lease token changed, as another worker's claim does); the other's lease keeps being
    renewed, which counts the beats."""
    upstream = Upstream()
    async with two_workers(database_url, upstream, lease=0.3) as (first, _, clock):
        await first._service.log.append(NewEvent("github", "push", "octo/hello", {"n": 8}))
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run_once)
            with anyio.fail_after(patience(10)):
                while len(upstream.calls) < 2:  # noqa: ASYNC110  # both calls started: bounded polling
                    await anyio.sleep(0.01)
            taken, kept = await first.deliveries.items()
            async with first._hub.database.transaction() as conn:
                mine = event_deliveries.c.id == taken.id
                await conn.execute(event_deliveries.update().where(mine).values(lease_token="another-worker"))
            with anyio.fail_after(patience(10)):
                for _ in range(4):  # four beats after the takeover: each renews the other lease
                    clock.now += 10
                    moved = dt.datetime.fromtimestamp(clock.now, dt.UTC)
                    while await lease_until(first, kept.id) <= moved:  # noqa: ASYNC110  # bounded polling
                        await anyio.sleep(0.02)
            upstream.answer.set()
        async with first._hub.database.transaction() as conn:
            query = sa.select(event_deliveries.c.lease_token).where(event_deliveries.c.id == taken.id)
            assert (await conn.execute(query)).scalar_one() == "another-worker"  # the new holder's row kept
    beat = f"delivery {taken.id}: lease lost (another worker took it over)"
    assert [r.getMessage() for r in caplog.records].count(beat) == 1  # said by the heartbeat once
