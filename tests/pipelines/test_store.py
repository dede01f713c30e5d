"""Run leases on SQLite and PostgreSQL: a run whose lease ran out is claimed by another worker, and the
first worker — paused past its lease, not dead — can then record nothing about it (fenced by the token)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from toolbridge.errors import Conflict, LeaseLost
from toolbridge.pipelines._store import RunStore, Started
from toolbridge.resilience._idempotency import IdempotencyStore
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def test_a_worker_whose_lease_was_taken_over_cannot_record(database_url: str) -> None:
    clock = Clock()
    async with Database(database_url) as db:
        store = RunStore(db, lease=30, clock=clock)
        first = await store.create("p", "local:op", {}, request_id="r", owner="worker-a")
        assert await store.claim_due(10, owner="worker-b") == []  # held: nobody else gets it
        await store.step_started(first, "00.a", "svc.a", attempts=1)
        clock.now += dt.timedelta(seconds=31)  # worker-a is paused past its lease
        (second,) = await store.claim_due(10, owner="worker-b")
        assert second.id == first.id and second.lease_token != first.lease_token
        store.note_done(first, "00.a", {"late": True}, None, tool="svc.a", attempts=1)
        with pytest.raises(LeaseLost):
            await store.flush(first)
        with pytest.raises(LeaseLost):
            await store.finish(first, "succeeded")
        assert not await store.renew(first)
        undo = {"tool": "svc.undo", "arguments": {"id": 1}}
        store.note_done(second, "00.a", {"id": 1}, undo, tool="svc.a", attempts=1)
        await store.flush(second)
        await store.finish(second, "succeeded", output={"id": 1})
        ended = await store.get(first.id)
        assert ended is not None and ended.state == "succeeded" and ended.output == {"id": 1}
        (step,) = await store.steps(first.id)
        assert (step.state, step.output, step.seq) == ("done", {"id": 1}, 1)


async def test_cancel_is_seen_by_the_worker_at_its_next_step(database_url: str) -> None:
    async with Database(database_url) as db:
        store = RunStore(db)
        run = await store.create("p", "agent:a", {}, request_id="r", owner="w")
        assert (await store.step_started(run, "00.a", "svc.a", attempts=1)).cancel_requested is False
        assert await store.cancel(run.id, principal="agent:someone-else") is None  # not theirs: unchanged
        cancelled = await store.cancel(run.id, principal="agent:a")
        assert cancelled is not None and cancelled.cancel_requested
        assert (await store.step_started(run, "01.b", "svc.b", attempts=1)).cancel_requested is True


async def test_a_key_claimed_with_a_step_start_is_stored_with_it_and_only_with_it(database_url: str) -> None:
    clock = Clock()
    async with Database(database_url) as db:
        store, keys = RunStore(db, lease=30, clock=clock), IdempotencyStore(db)

        def claim(key: str) -> Any:
            return lambda conn: keys.claim_in(conn, "local:op", key, "svc.a", "d", request_id="r")

        run = await store.create("p", "local:op", {}, request_id="r", owner="worker-a")
        assert await store.step_started(run, "00.a", "svc.a", attempts=1, claim=claim("k1")) == Started(
            cancel_requested=False, claimed=True
        )
        with pytest.raises(Conflict):  # claimed and in flight: another call with the key waits
            await keys.claim("local:op", "k1", "svc.a", "d")
        again = await store.step_started(run, "00.a", "svc.a", attempts=2, claim=claim("k1"))
        assert again == Started(cancel_requested=False, claimed=False)  # the call claims it as usual
        clock.now += dt.timedelta(seconds=31)
        (second,) = await store.claim_due(10, owner="worker-b")
        with pytest.raises(LeaseLost):
            await store.step_started(run, "01.a", "svc.a", attempts=1, claim=claim("k2"))
        assert await keys.claim("local:op", "k2", "svc.a", "d") is None  # rolled back with the step
        assert await store.cancel(run.id, principal=None) is not None
        cancelled = await store.step_started(second, "01.a", "svc.a", attempts=1, claim=claim("k3"))
        assert cancelled == Started(cancel_requested=True, claimed=False)
        assert await keys.claim("local:op", "k3", "svc.a", "d") is None  # not claimed: not called
