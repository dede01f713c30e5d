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

        def claim(key: str, digest: str = "d") -> Any:
            return keys.joined_claim("local:op", key, "svc.a", digest, request_id="r")

        run = await store.create("p", "local:op", {}, request_id="r", owner="worker-a")
        assert await store.step_started(run, "00.a", "svc.a", attempts=1, claim=claim("k1")) == Started(
            cancel_requested=False, claimed=True
        )
        with pytest.raises(Conflict):  # claimed and in flight: another call with the key waits
            await keys.claim("local:op", "k1", "svc.a", "d")
        # the step started again under the run's lease (its holder stopped mid-call): it takes its key's
        # claim over, whatever the claim's lease; not a claim for other arguments (the call gets a 422)
        again = await store.step_started(run, "00.a", "svc.a", attempts=2, claim=claim("k1"))
        assert again == Started(cancel_requested=False, claimed=True)
        other = await store.step_started(run, "00.a", "svc.a", attempts=3, claim=claim("k1", "other"))
        assert other == Started(cancel_requested=False, claimed=False)
        await keys.complete("local:op", "k1", result={"value": 1})
        done = await store.step_started(run, "00.a", "svc.a", attempts=4, claim=claim("k1"))
        assert done == Started(cancel_requested=False, claimed=False)  # finished: the call replays it
        clock.now += dt.timedelta(seconds=31)
        (second,) = await store.claim_due(10, owner="worker-b")
        with pytest.raises(LeaseLost):
            await store.step_started(run, "01.a", "svc.a", attempts=1, claim=claim("k2"))
        assert await keys.claim("local:op", "k2", "svc.a", "d") is None  # rolled back with the step
        assert await store.cancel(run.id, principal=None) is not None
        cancelled = await store.step_started(second, "01.a", "svc.a", attempts=1, claim=claim("k3"))
        assert cancelled == Started(cancel_requested=True, claimed=False)
        assert await keys.claim("local:op", "k3", "svc.a", "d") is None  # not claimed: not called


async def test_a_key_completion_joined_to_a_step_outcome_commits_with_it_and_only_with_it(
    database_url: str,
) -> None:
    """A step's key is completed by the transaction that writes the step's outcome (the run's next write);
    when that write is fenced out, neither is stored: the step stays running, its key in flight, the next
    owner's start of the step takes the claim over; the first worker gets the completion back to store."""
    clock = Clock()
    async with Database(database_url) as db:
        store, keys = RunStore(db, lease=30, clock=clock), IdempotencyStore(db)

        def claim(key: str) -> Any:
            return keys.joined_claim("local:op", key, "svc.a", "d", request_id="r")

        def complete(key: str, value: int) -> Any:
            return keys.joined_completion("local:op", key, result={"value": value})

        run = await store.create("p", "local:op", {}, request_id="r", owner="worker-a")
        await store.step_started(run, "00.a", "svc.a", attempts=1, claim=claim("k1"))
        store.note_done(run, "00.a", {"id": 1}, None, tool="svc.a", attempts=1, then=complete("k1", 1))
        with pytest.raises(Conflict):  # noted, not written yet: the key is still in flight
            await keys.claim("local:op", "k1", "svc.a", "d")
        await store.step_started(run, "01.b", "svc.a", attempts=1, claim=claim("k2"))
        replay = await keys.claim("local:op", "k1", "svc.a", "d")  # written with the next step's start
        assert replay is not None and replay.result == {"value": 1}
        store.note_done(run, "01.b", {"id": 2}, None, tool="svc.a", attempts=1, then=complete("k2", 2))
        clock.now += dt.timedelta(seconds=31)  # worker-a is paused past its lease before its next write
        (second,) = await store.claim_due(10, owner="worker-b")
        assert second.steps is not None  # read with the claim
        assert [(s.key, s.state) for s in second.steps] == [("00.a", "done"), ("01.b", "running")]
        with pytest.raises(LeaseLost):
            await store.finish(run, "succeeded", output={"id": 2})
        assert [s.state for s in await store.steps(run.id)] == ["done", "running"]  # rolled back together
        with pytest.raises(Conflict):
            await keys.claim("local:op", "k2", "svc.a", "d")
        started = await store.step_started(second, "01.b", "svc.a", attempts=2, claim=claim("k2"))
        assert started.claimed  # taken over under the run's lease: the call is made again, same key
        (dropped,) = store.forget_noted(run)  # worker-a's completion, given back to store on its own
        async with db.transaction() as conn:
            await dropped(conn)
        replay = await keys.claim("local:op", "k2", "svc.a", "d")
        assert replay is not None and replay.result == {"value": 2}
        ended = await store.finish(second, "succeeded", output={"id": 2})
        assert (ended.state, ended.output, ended.lease_token) == ("succeeded", {"id": 2}, None)


async def test_a_run_queued_and_claimed_has_no_steps_to_read(database_url: str) -> None:
    async with Database(database_url) as db:
        store = RunStore(db)
        queued = await store.create("p", "local:op", {}, request_id="r", owner=None)
        assert queued.steps is None
        (claimed,) = await store.claim_due(10, owner="worker-a")
        assert claimed.id == queued.id and claimed.steps == ()


async def test_a_run_created_leased_is_stored_by_its_first_write_and_not_before(database_url: str) -> None:
    async with Database(database_url) as db:
        store = RunStore(db)
        run = await store.create("p", "local:op", {"x": 1}, request_id="r", owner="worker-a")
        assert await store.get(run.id) is None and await store.renew(run)
        await store.step_started(run, "00.a", "svc.a", attempts=1)  # one transaction: the run and its step
        stored = await store.get(run.id)
        assert stored is not None and (stored.state, stored.input) == ("running", {"x": 1})
        assert [s.key for s in await store.steps(run.id)] == ["00.a"]
        dropped = await store.create("p", "local:op", {}, request_id="r", owner="worker-a")
        assert store.forget_noted(dropped) == []  # stopped before its first write: nothing is stored
        with pytest.raises(LeaseLost):
            await store.flush(dropped)
        assert await store.get(dropped.id) is None
