"""Replicas whose clocks disagree: leases are written and compared in the database server's time.

Each replica is a :class:`Database` given a machine clock that is off (as a VM's can be after a pause,
or a host without NTP); before, every lease was in the local clock, so a replica whose clock ran a
lease's length ahead took over claims, queued writes, deliveries and runs another replica still held
(a keyed write sent twice), and one whose clock ran behind thought abandoned work still held.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
from tests._patience import patience

from toolbridge.errors import KeyInFlight, UpstreamUnavailable
from toolbridge.events._deliveries import Deliveries
from toolbridge.pipelines._store import RunStore
from toolbridge.resilience._idempotency import IdempotencyStore
from toolbridge.resilience._outbox import Outbox
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio

AHEAD = dt.timedelta(hours=1)


def machine_clock(off_by: dt.timedelta) -> Callable[[], dt.datetime]:
    return lambda: dt.datetime.now(dt.UTC) + off_by


@asynccontextmanager
async def replicas(url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two processes' databases on one server: the first with a right clock, the second an hour ahead."""
    async with AsyncExitStack() as stack:
        right = await stack.enter_async_context(Database(url))
        ahead = await stack.enter_async_context(Database(url, clock=machine_clock(AHEAD)))
        yield right, ahead


async def test_now_is_the_servers_time_whatever_this_machines_clock_says(postgres_url: str) -> None:
    async with replicas(postgres_url) as (right, ahead):
        assert abs(ahead.clock_offset + AHEAD.total_seconds()) < 5
        assert abs((ahead.now() - right.now()).total_seconds()) < 5
        assert abs(ahead.time() - right.time()) < 5
        assert abs(await ahead.sync_clock() + AHEAD.total_seconds()) < 5


async def test_a_clock_stepped_while_running_is_followed(postgres_url: str) -> None:
    step = [dt.timedelta(0)]
    async with Database(postgres_url, clock=lambda: dt.datetime.now(dt.UTC) + step[0]) as db:
        assert abs(db.clock_offset) < 5
        step[0] = AHEAD  # this machine's clock is stepped an hour ahead
        async with anyio.create_task_group() as tg:
            tg.start_soon(db.follow_clock, 0.05)
            with anyio.fail_after(patience(10)):
                while db.clock_offset > -AHEAD.total_seconds() + 5:  # noqa: ASYNC110  # a number: polling
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        assert abs((db.now() - dt.datetime.now(dt.UTC)).total_seconds()) < 5


async def test_sqlite_keeps_this_machines_clock(sqlite_url: str) -> None:
    # its processes share one machine, so one clock: there is no server to read
    async with Database(sqlite_url, clock=machine_clock(AHEAD)) as db:
        assert db.clock_offset == 0.0
        assert (db.now() - dt.datetime.now(dt.UTC)).total_seconds() > AHEAD.total_seconds() - 5


async def test_a_replica_ahead_does_not_take_over_a_keyed_call_in_flight(postgres_url: str) -> None:
    async with replicas(postgres_url) as (right, ahead):
        running = IdempotencyStore(right)
        assert await running.claim("local:local", "k", "api.create", "digest", request_id="r1") is None
        with pytest.raises(KeyInFlight) as busy:  # the key travels: a take-over would send it again
            await IdempotencyStore(ahead).claim("local:local", "k", "api.create", "digest", resumable=True)
        assert busy.value.retry_after <= running.lease


async def test_a_replica_ahead_does_not_lease_a_queued_write_another_holds(postgres_url: str) -> None:
    async with replicas(postgres_url) as (right, ahead):
        first, other = Outbox(right, base_delay=0), Outbox(ahead, base_delay=0)
        await first.enqueue(
            "local:local", "api.create", {"name": "a"}, "k", UpstreamUnavailable("down", sent=False)
        )
        await first.enqueue(
            "local:local", "api.create", {"name": "b"}, None, UpstreamUnavailable("down", sent=False)
        )
        held = await first.claim_due(owner="right")
        assert len(held) == 2  # both due now, in the server's time, for the replica that is right
        assert await other.claim_due(owner="ahead") == []  # their leases run on the server's clock


async def test_a_replica_ahead_does_not_lease_a_run_another_holds(postgres_url: str) -> None:
    async with replicas(postgres_url) as (right, ahead):
        first, other = RunStore(right), RunStore(ahead)
        run = await first.create("p", "local:local", {}, request_id="r1", owner=None)
        assert [r.id for r in await first.claim_due(5, owner="right")] == [run.id]
        assert await other.claim_due(5, owner="ahead") == []
        assert await other.claim(run.id, owner="ahead") is None


async def test_a_replica_ahead_reads_deliveries_in_the_servers_time(postgres_url: str) -> None:
    async with replicas(postgres_url) as (right, ahead):
        assert abs(Deliveries(ahead).clock() - Deliveries(right).clock()) < 5
        assert abs(Deliveries(ahead).now() - right.now()) < dt.timedelta(seconds=5)
