"""Run leases on SQLite and PostgreSQL: a run whose lease ran out is claimed by another worker, and the
first worker — paused past its lease, not dead — can then record nothing about it (fenced by the token)."""

from __future__ import annotations

import datetime as dt

import pytest

from toolbridge.errors import LeaseLost
from toolbridge.pipelines._store import RunStore
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
        assert await store.step_started(run, "00.a", "svc.a", attempts=1) is False
        assert await store.cancel(run.id, principal="agent:someone-else") is None  # not theirs: unchanged
        cancelled = await store.cancel(run.id, principal="agent:a")
        assert cancelled is not None and cancelled.cancel_requested
        assert await store.step_started(run, "01.b", "svc.b", attempts=1) is True
