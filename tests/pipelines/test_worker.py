"""An idle worker wakes when a run is queued — in its own process directly, from another process through
PostgreSQL's LISTEN/NOTIFY — rather than at its next poll (an hour here); and a run whose steps' outcomes
are written with the next step's start records every step once, in order."""

from __future__ import annotations

import anyio
import pytest

from tests._patience import patience
from toolbridge import Hub, Principal
from toolbridge.pipelines import (
    Pipeline,
    PipelineService,
    PipelineWorker,
    PipelineWorkerSettings,
    add_pipelines,
)
from toolbridge.pipelines._tables import pipeline_runs

from .test_engine import ME, Ledger, make_hub, undoable

pytestmark = pytest.mark.anyio
HOUR = PipelineWorkerSettings(poll_interval=3600)
TWO = Pipeline.build("two", [undoable("a", "${input.name}"), undoable("b", "${input.name}-b")])


async def finished(service: PipelineService, run_id: str) -> str:
    """The run's state once it ended, or as it stands after a bounded wait (nothing woke the worker)."""
    return (await service.wait(run_id, patience(30))).state


async def test_a_worker_in_the_same_process_wakes_when_a_run_is_queued(database_url: str) -> None:
    ledger = Ledger()
    hub, service = make_hub(database_url, ledger, [TWO], settings=HOUR, inline=False)
    async with hub, anyio.create_task_group() as tg:
        tg.start_soon(PipelineWorker(service).run)
        await anyio.sleep(0.2)  # the worker has looked once and sleeps for its poll interval
        run = await service.start("two", ME, {"name": "x"}, request_id="t")
        assert await finished(service, run.id) == "succeeded"
        tg.cancel_scope.cancel()
    assert ledger.calls == ["create x", "create x-b"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_worker_is_woken_by_a_run_queued_in_another_process(database_url: str) -> None:
    """Two hubs on one PostgreSQL database stand for two processes: only the database links them."""
    ledger = Ledger()
    hub, service = make_hub(database_url, ledger, [TWO], settings=HOUR, inline=False)
    other, elsewhere = make_hub(database_url, Ledger(), [TWO], settings=HOUR, inline=False)
    async with hub, other, anyio.create_task_group() as tg:
        tg.start_soon(PipelineWorker(service).run)
        await anyio.sleep(0.5)  # listening, idle until its poll interval ends
        run = await elsewhere.start("two", ME, {"name": "y"}, request_id="t")
        assert await finished(service, run.id) == "succeeded"
        tg.cancel_scope.cancel()
    assert ledger.calls == ["create y", "create y-b"]


async def test_each_step_is_recorded_done_once_in_the_order_it_completed(database_url: str) -> None:
    hub, service = make_hub(database_url, Ledger(), [TWO])
    async with hub:
        result = await hub.call(ME, "pipelines.two", {"name": "z"})
        steps = await service.store.steps(result.value["run_id"])
    assert [(s.key, s.state, s.attempts, s.seq) for s in steps] == [
        ("00.a", "done", 1, 1),
        ("01.b", "done", 1, 2),
    ]
    assert [s.compensation for s in steps] == [
        {"tool": "svc.remove", "arguments": {"id": 1}},
        {"tool": "svc.remove", "arguments": {"id": 2}},
    ]


async def test_a_run_whose_lease_is_taken_over_mid_step_is_left_to_its_new_holder(database_url: str) -> None:
    """The heartbeat finds the lease gone (another worker claimed the run: a worker slowed past its lease
    on a busy machine) and stops the run here; executing it returns None and raises nothing (it raised
    UnboundLocalError, which ended a worker process and orphaned its other runs' keys)."""
    hub = Hub(database=database_url)
    entered = anyio.Event()

    @hub.tool(connector="slow", idempotent=True)
    async def hold(name: str) -> dict[str, str]:
        entered.set()
        await anyio.sleep_forever()
        return {"name": name}

    held = Pipeline.build("held", [{"name": "a", "tool": "slow.hold", "arguments": {"name": "x"}}])
    service = add_pipelines(hub, [held], inline=False)
    ended: list[str | None] = []
    async with hub:
        service.store.lease = 0.3  # renewed every 0.1 s
        run = await service.store.create("held", ME.id, {}, request_id="t", owner=service.owner)

        async def execute() -> None:
            ended.append(await service.execute(run))

        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            with anyio.fail_after(patience(30)):
                await entered.wait()
            async with hub.database.transaction() as conn:  # another worker holds it now
                taken = pipeline_runs.update().where(pipeline_runs.c.id == run.id)
                await conn.execute(taken.values(lease_token="other-worker/1"))
    assert ended == [None]


async def leaver(hub: Hub) -> Principal:
    """An agent that may start the pipeline (revoked by the tests below)."""
    await hub.agents.create("leaver", ["pipelines.*", "svc.*"])
    return await hub.agents.principal_for("agent:leaver")


async def test_a_run_whose_agent_was_revoked_fails_and_the_worker_goes_on(database_url: str) -> None:
    """Revoking an agent stops its queued work: its run is claimed, fails saying why, and the worker runs
    the next run (the principal lookup's AuthenticationError escaped the run and ended the worker)."""
    ledger = Ledger()
    hub, service = make_hub(database_url, ledger, [TWO], settings=HOUR, inline=False)
    async with hub:
        gone = await service.start("two", await leaver(hub), {"name": "gone"}, request_id="t1")
        assert await hub.agents.revoke("leaver") == 1
        kept = await service.start("two", ME, {"name": "kept"}, request_id="t2")
        async with anyio.create_task_group() as tg:
            tg.start_soon(PipelineWorker(service).run)
            assert await finished(service, kept.id) == "succeeded"
            assert await finished(service, gone.id) == "failed"
            tg.cancel_scope.cancel()
        ended = await service.store.get(gone.id)
    assert ended is not None and "revoked" in ended.error["detail"]
    assert ledger.calls == ["create kept", "create kept-b"]


async def test_a_run_left_with_done_steps_by_a_revoked_agent_needs_attention(database_url: str) -> None:
    """Its completed steps are not undone as an agent that may no longer act: an operator must."""
    ledger = Ledger()
    hub, service = make_hub(database_url, ledger, [TWO], settings=HOUR, inline=False)
    async with hub:
        run = await service.start("two", await leaver(hub), {"name": "x"}, request_id="t")
        claimed = await service.store.claim_due(1, owner="worker-that-dies")
        with anyio.CancelScope() as scope:  # a worker that dies once step a is done
            service.engine.observer = lambda phase, _run, key: scope.cancel() if key == "01.b" else None
            await service.execute(claimed[0])
        service.engine.observer = None
        assert await hub.agents.revoke("leaver") == 1
        async with hub.database.transaction() as conn:  # its lease ran out
            await conn.execute(pipeline_runs.update().values(lease_until=pipeline_runs.c.created_at))
        async with anyio.create_task_group() as tg:
            tg.start_soon(PipelineWorker(service).run)
            assert await finished(service, run.id) == "needs_attention"
            tg.cancel_scope.cancel()
        ended = await service.store.get(run.id)
    assert ended is not None and "00.a were not undone" in ended.error["detail"]
    assert ledger.calls == ["create x"]
