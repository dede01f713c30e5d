"""An idle worker wakes when a run is queued — in its own process directly, from another process through
PostgreSQL's LISTEN/NOTIFY — rather than at its next poll (an hour here); and a run whose steps' outcomes
are written with the next step's start records every step once, in order."""

from __future__ import annotations

import anyio
import pytest

from tests._patience import patience
from toolbridge.pipelines import Pipeline, PipelineService, PipelineWorker, PipelineWorkerSettings

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
