"""The pipeline engine with in-process tools, on SQLite and PostgreSQL: ordering, templates, for_each,
when, checks, retries, compensation in reverse, needs_attention, cancel and the audit rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from tests._patience import patience
from toolbridge import Hub
from toolbridge.connectors import Invocation
from toolbridge.errors import ToolExecutionError, UpstreamStatusError
from toolbridge.events import EventFilter, EventLog, EventService
from toolbridge.pipelines import Pipeline, PipelineService, add_pipelines
from toolbridge.policy import Principal
from toolbridge.resilience import BreakerPolicy, Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.resilience._idempotency import IdempotencyStore

pytestmark = pytest.mark.anyio
ME = Principal.local("tester")


@dataclass
class Ledger:
    """Effects applied by the fake service: live items, and every call in order."""

    live: dict[int, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    """tool → how many more calls of it fail (503)."""
    next_id: int = 0

    def maybe_fail(self, tool: str) -> None:
        if self.fail.get(tool, 0) > 0:
            self.fail[tool] -= 1
            raise UpstreamStatusError(f"{tool} unavailable", upstream_status=503, tool=f"svc.{tool}")


async def no_sleep(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


def make_hub(
    url: str, ledger: Ledger, pipelines: list[Pipeline], **options: Any
) -> tuple[Hub, PipelineService]:
    hub = Hub(database=url, resilience=Resilience(sleep=no_sleep))

    @hub.tool(connector="svc", idempotent=True)
    def create(name: str) -> dict[str, Any]:
        ledger.calls.append(f"create {name}")
        ledger.maybe_fail("create")
        ledger.next_id += 1
        ledger.live[ledger.next_id] = name
        return {"id": ledger.next_id, "name": name, "size": len(name)}

    @hub.tool(connector="svc", idempotent=True)
    def remove(id: int) -> dict[str, Any]:
        ledger.calls.append(f"remove {id}")
        ledger.maybe_fail("remove")
        ledger.live.pop(id, None)
        return {"removed": id}

    @hub.tool(connector="svc")
    def explode(reason: str) -> dict[str, Any]:
        ledger.calls.append(f"explode {reason}")
        raise ValueError(reason)

    # no hub-level retries and no breaker: the tests count the pipeline's own attempts
    hub.resilience.configure(
        "svc", ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(enabled=False))
    )
    service = add_pipelines(hub, pipelines, sleep=no_sleep, **options)
    return hub, service


def undoable(name: str, argument: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "tool": "svc.create",
        "arguments": {"name": argument},
        "compensate": {"tool": "svc.remove", "arguments": {"id": "${output.id}"}},
        **extra,
    }


FLOW = Pipeline.build(
    "flow",
    [
        undoable("first", "${input.title}"),
        undoable("each", "${input.title}-${item}", for_each="input.parts", concurrency=2),
        undoable("second", "after-${steps.first.id}", when="input.second"),
        {"name": "last", "tool": "svc.explode", "when": "input.explode", "arguments": {"reason": "late"}},
    ],
    input_schema={
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "parts": {"type": "array", "items": {"type": "string"}},
            "second": {"type": "boolean"},
            "explode": {"type": "boolean"},
        },
        "required": ["title", "parts"],
    },
    output={"first": "${steps.first.id}", "parts": "${steps.each[].name}"},
)


@pytest.fixture
async def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
async def flow(database_url: str, ledger: Ledger) -> AsyncIterator[tuple[Hub, PipelineService]]:
    hub, service = make_hub(database_url, ledger, [FLOW])
    async with hub:
        yield hub, service


async def test_a_run_calls_its_steps_in_order_and_returns_its_output(
    flow: tuple[Hub, PipelineService], ledger: Ledger
) -> None:
    hub, service = flow
    result = await hub.call(ME, "pipelines.flow", {"title": "clip", "parts": ["a", "b"], "second": True})
    assert result.value["state"] == "succeeded"
    assert result.value["output"] == {"first": 1, "parts": ["clip-a", "clip-b"]}
    assert ledger.calls[0] == "create clip" and ledger.calls[-1] == "create after-1"
    assert sorted(ledger.calls[1:3]) == ["create clip-a", "create clip-b"]
    status = await service.status(result.value["run_id"])
    assert sorted((s["key"], s["state"]) for s in status["steps"]) == [
        ("00.first", "done"),
        ("01.each[0]", "done"),
        ("01.each[1]", "done"),
        ("02.second", "done"),
        ("03.last", "skipped"),
    ]


async def test_a_failing_step_undoes_the_completed_steps_in_reverse(
    flow: tuple[Hub, PipelineService], ledger: Ledger
) -> None:
    hub, service = flow
    with pytest.raises(ToolExecutionError, match=r"ended failed at step 03\.last.*undone"):
        await hub.call(ME, "pipelines.flow", {"title": "x", "parts": ["p"], "second": True, "explode": True})
    assert ledger.live == {}
    assert ledger.calls[-3:] == ["remove 3", "remove 2", "remove 1"]  # reverse order of completion
    (run,) = await service.store.runs()
    assert run.state == "failed" and run.error is not None and run.error["step"] == "03.last"


async def test_the_audit_has_the_run_and_its_steps_as_child_rows(flow: tuple[Hub, PipelineService]) -> None:
    hub, _ = flow
    result = await hub.call(ME, "pipelines.flow", {"title": "t", "parts": []})
    run_id = result.value["run_id"]
    await hub.audit.flush()
    rows = [r.entry for r in await hub.audit.tail(limit=50)]
    children = sorted(r.request_id for r in rows if r.request_id.startswith(f"{run_id}/"))
    assert children == [f"{run_id}/00.first"]
    (own,) = [r for r in rows if r.request_id == run_id]
    assert own.tool == "pipelines.flow" and own.outcome == "ok"


async def test_transient_failures_are_retried_with_the_same_step(database_url: str, ledger: Ledger) -> None:
    ledger.fail["create"] = 2
    hub, _ = make_hub(database_url, ledger, [FLOW])
    async with hub:
        result = await hub.call(ME, "pipelines.flow", {"title": "r", "parts": []})
    assert result.value["state"] == "succeeded"
    assert ledger.calls == ["create r"] * 3 and list(ledger.live.values()) == ["r"]


async def test_a_failure_the_connectors_policy_retried_is_not_retried_again_by_the_step(
    database_url: str, ledger: Ledger
) -> None:
    """One layer retries each failure: a step's 3 attempts around a policy of 3 made 9 requests (an outside
    probe saw 3 × 5 = 15 trip the connector's breaker for every caller)."""
    ledger.fail["create"] = 100
    hub, _ = make_hub(database_url, ledger, [FLOW])
    hub.resilience.configure(
        "svc", ResiliencePolicy(retry=RetryPolicy(max_attempts=3), breaker=BreakerPolicy(enabled=False))
    )
    async with hub:
        with pytest.raises(ToolExecutionError, match="ended failed at step 00.first"):
            await hub.call(ME, "pipelines.flow", {"title": "r", "parts": []})
    assert ledger.calls == ["create r"] * 3  # the policy's three, and no step retry on top


async def test_a_compensation_that_keeps_failing_ends_needs_attention(
    database_url: str, ledger: Ledger
) -> None:
    ledger.fail["remove"] = 100
    hub, service = make_hub(database_url, ledger, [FLOW])
    hub.event_service = events = EventService(EventLog(hub.database))
    async with hub:
        with pytest.raises(ToolExecutionError, match="needs_attention"):
            await hub.call(ME, "pipelines.flow", {"title": "n", "parts": [], "explode": True})
        (run,) = await service.store.runs()
        assert run.state == "needs_attention"
        found, _ = await events.log.wait(
            0, match=EventFilter(source="toolbridge.pipelines"), seconds=patience(10)
        )
        assert [(e.type, e.payload["run_id"]) for e in found] == [
            ("toolbridge.pipeline.needs_attention", run.id)
        ]
        assert ledger.calls.count("remove 1") == service.settings.compensation_attempts
        steps = {s.key: s.state for s in await service.store.steps(run.id)}
        assert steps["00.first"] == "compensation_failed"
        ledger.fail["remove"] = 0  # a person fixed the upstream: resume compensates again
        resumed = await service.resume(run.id)
        assert resumed.state == "failed" and ledger.live == {}


async def test_an_output_that_fails_its_check_is_undone_with_the_rest(
    database_url: str, ledger: Ledger
) -> None:
    checked = Pipeline.build(
        "checked",
        [
            undoable("a", "ok"),
            undoable(
                "b",
                "${input.name}",
                check={"schema": {"type": "object", "required": ["id"]}, "require": ["output.size > `3`"]},
            ),
        ],
        input_schema={"type": "object", "properties": {"name": {"type": "string"}}},
    )
    hub, _ = make_hub(database_url, ledger, [checked])
    async with hub:
        with pytest.raises(ToolExecutionError, match="fails the check 'output.size > `3`'"):
            await hub.call(ME, "pipelines.checked", {"name": "no"})
        assert ledger.live == {}
        ok = await hub.call(ME, "pipelines.checked", {"name": "long enough"})
        assert ok.value["output"]["name"] == "long enough"


async def test_cancel_undoes_what_a_run_did(database_url: str, ledger: Ledger) -> None:
    entered, gate = anyio.Event(), anyio.Event()
    slow = Pipeline.build(
        "slow",
        [undoable("a", "one"), {"name": "wait", "tool": "svc.hold", "arguments": {}}, undoable("b", "two")],
    )
    hub, service = make_hub(database_url, ledger, [slow])

    @hub.tool(connector="svc", read_only=True)
    async def hold() -> dict[str, Any]:
        entered.set()
        await gate.wait()
        return {}

    async with hub:
        run = await service.start("slow", ME, {}, request_id="r1")
        with anyio.fail_after(patience(10)):
            await entered.wait()
        await service.cancel(run.id)
        gate.set()
        ended = await service.wait(run.id, patience(10))
    assert ended.state == "cancelled"
    assert ledger.live == {} and "create two" not in ledger.calls


async def test_a_step_over_its_timeout_is_retried_when_safe_else_undone(
    database_url: str, ledger: Ledger
) -> None:
    slow_calls: list[bool] = []
    timeout = patience(1.0)  # the second, quick attempt must answer within it on a busy machine too
    timed = Pipeline.build(
        "timed",
        [
            undoable("a", "kept"),
            {"name": "slow", "tool": "svc.slow", "arguments": {"safe": "${input.safe}"}, "timeout": timeout},
        ],
        input_schema={"type": "object", "properties": {"safe": {"type": "boolean"}}},
    )
    hub, _ = make_hub(database_url, ledger, [timed])

    @hub.tool(connector="svc", idempotent=True)
    async def slow(safe: bool) -> dict[str, Any]:
        slow_calls.append(safe)
        if len(slow_calls) == 1 or not safe:
            await anyio.sleep(patience(30))  # past the step's timeout (cancelled by it)
        return {"ok": True}

    async with hub:
        result = await hub.call(ME, "pipelines.timed", {"safe": True})  # idempotent: the second try answers
        assert result.value["output"] == {"ok": True} and slow_calls == [True, True]
        assert list(ledger.live.values()) == ["kept"]
        # now always too slow: its attempts run out, and the run's "a" is undone
        with pytest.raises(ToolExecutionError, match=rf"ended failed at step 01\.slow.*within {timeout:g} s"):
            await hub.call(ME, "pipelines.timed", {"safe": False})
        assert list(ledger.live.values()) == ["kept"]  # the second run's "a" was undone


async def test_a_step_whose_outcome_was_fenced_out_is_replayed_from_its_key_not_called_again(
    database_url: str, ledger: Ledger
) -> None:
    """A step's key completion rides with the run's next write; when that write finds the lease taken
    over, the worker stores the completion on its own, so the run's next owner replays the step's result
    from its key instead of calling the tool again (and instead of waiting for its claim)."""
    import sqlalchemy as sa

    from toolbridge.pipelines._tables import pipeline_runs
    from toolbridge.storage import idempotency_records

    flow = Pipeline.build(
        "stolen",
        [
            {"name": "grab", "tool": "svc.grab", "arguments": {}},
            undoable("then", "after-${steps.grab.n}"),
        ],
    )
    hub, service = make_hub(database_url, ledger, [flow])

    @hub.tool(connector="svc", idempotent=True)
    async def grab() -> dict[str, Any]:
        ledger.calls.append("grab")
        async with hub.database.transaction() as conn:  # another worker takes the run over meanwhile
            await conn.execute(pipeline_runs.update().values(lease_token="another-worker"))
        return {"n": len(ledger.calls)}

    async with hub:
        result = await hub.call(ME, "pipelines.stolen", {})
        run_id = result.value["run_id"]
        assert result.value["state"] == "running" and ledger.calls == ["grab"]
        assert [(s.key, s.state) for s in await service.store.steps(run_id)] == [("00.grab", "running")]
        async with hub.database.transaction() as conn:
            stored = (
                await conn.execute(
                    sa.select(idempotency_records.c.state, idempotency_records.c.outcome).where(
                        idempotency_records.c.key == f"pl-{run_id}-00.grab"
                    )
                )
            ).one()
            assert stored.state == "done" and stored.outcome["result"]["value"] == {"n": 1}
            await conn.execute(pipeline_runs.update().values(lease_token=None, lease_until=None))
        ended = await service.resume(run_id)
    assert ended.state == "succeeded"
    assert ledger.calls == ["grab", "create after-1"]  # replayed, not called again


@pytest.mark.parametrize(
    ("failure", "idempotent"),
    [("timeout", False), ("bad_request", True), ("tool_error", True)],
)
async def test_a_compensation_is_not_repeated_when_repeating_it_is_unsafe_or_useless(
    database_url: str, ledger: Ledger, failure: str, idempotent: bool
) -> None:
    """A refund that timed out after it was applied, and is not safe to repeat, is not sent again (the
    upstream would refund twice); nor is an undo the upstream refused for good (400) or that raised: the
    run ends needs_attention after one try, where it used to try five times."""
    from toolbridge.errors import UpstreamTimeout

    def fail() -> None:
        if failure == "timeout":
            raise UpstreamTimeout("no answer in time", tool="svc.refund")
        if failure == "bad_request":
            raise UpstreamStatusError("refund refused", upstream_status=400, tool="svc.refund")
        raise ValueError("refund crashed")

    pay = Pipeline.build(
        "pay",
        [
            {
                "name": "charge",
                "tool": "svc.charge",
                "arguments": {"amount": 5},
                "compensate": {"tool": "svc.refund", "arguments": {"id": "${output.id}"}},
            },
            {"name": "boom", "tool": "svc.explode", "arguments": {"reason": "late"}},
        ],
    )
    hub, service = make_hub(database_url, ledger, [pay])

    @hub.tool(connector="svc", idempotent=idempotent)
    def charge(amount: int) -> dict[str, Any]:
        ledger.calls.append(f"charge {amount}")
        return {"id": 7, "amount": amount}

    @hub.tool(connector="svc", idempotent=idempotent)
    def refund(id: int) -> dict[str, Any]:
        ledger.calls.append(f"refund {id}")
        fail()
        return {"refunded": id}

    async with hub:
        with pytest.raises(ToolExecutionError, match="needs_attention"):
            await hub.call(ME, "pipelines.pay", {})
        (run,) = await service.store.runs()
        steps = {s.key: s.state for s in await service.store.steps(run.id)}
    assert ledger.calls == ["charge 5", "explode late", "refund 7"]
    assert run.state == "needs_attention" and steps["00.charge"] == "compensation_failed"


async def test_a_compensation_whose_key_is_still_held_waits_for_the_claim_without_using_an_attempt(
    database_url: str, ledger: Ledger
) -> None:
    """A worker killed mid-undo leaves the undo's key claimed until its lease ends: the next worker meets
    it in flight (409 with retry_after). That never reached the upstream: the undo waits for the claim to
    end and uses up no attempt. It used to count as a failed attempt and sleep a short jitter, so five
    tries could pass within one claim and a run whose undo was applied ended needs_attention (found by an
    outside kill -9 probe on PostgreSQL: 3 of 30 runs)."""

    slept: list[float] = []

    async def real_sleep(seconds: float) -> None:
        slept.append(seconds)
        await anyio.sleep(min(seconds, 3.0))

    hub = Hub(database=database_url, resilience=Resilience(sleep=no_sleep))
    dead = IdempotencyStore(hub.database, lease=2.0)  # a stopped worker's claim: never renewed

    @hub.tool(connector="svc", idempotent=True)
    def reserve(name: str) -> dict[str, Any]:
        ledger.calls.append(f"reserve {name}")
        return {"id": 3}

    @hub.tool(connector="svc", idempotent=True)
    def release(id: int) -> dict[str, Any]:
        ledger.calls.append(f"release {id}")
        return {"released": id}

    @hub.tool(connector="svc")
    async def explode(reason: str, invocation: Invocation) -> dict[str, Any]:
        run_id = invocation.request_id.split("/")[0]
        early = hub.early_claim("svc.release", {"id": 3})
        assert early is not None
        await dead.claim(ME.id, f"pl-{run_id}-00.reserve~undo", *early, request_id="stopped")
        raise ValueError(reason)

    hub.resilience.configure(
        "svc", ResiliencePolicy(retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(enabled=False))
    )
    hold = Pipeline.build(
        "hold",
        [
            {
                "name": "reserve",
                "tool": "svc.reserve",
                "arguments": {"name": "x"},
                "compensate": {"tool": "svc.release", "arguments": {"id": "${output.id}"}},
            },
            {"name": "boom", "tool": "svc.explode", "arguments": {"reason": "late"}},
        ],
    )
    service = add_pipelines(hub, [hold], sleep=real_sleep)
    async with hub:
        with pytest.raises(ToolExecutionError, match="ended failed"):
            await hub.call(ME, "pipelines.hold", {})
        (run,) = await service.store.runs()
        steps = {s.key: s.state for s in await service.store.steps(run.id)}
    assert run.state == "failed" and steps["00.reserve"] == "compensated"
    assert ledger.calls == ["reserve x", "release 3"]
    assert slept and slept[0] >= 1.0  # waited for the claim (about 2 s), not a 0-0.5 s jitter


async def test_a_keyed_pipeline_call_cut_off_by_a_crash_runs_once_when_called_again(
    database_url: str, ledger: Ledger
) -> None:
    """An event delivery starts a pipeline with the delivery id as key. A worker killed mid-call left the
    key orphaned, and a pipeline tool was not safe to repeat, so every later attempt was answered
    outcome_unknown: the delivery replayed it for its whole schedule and ended failed — although its run
    had succeeded, or, killed before the run was stored, the event never ran (found by an outside kill -9
    probe: 7 of 30 deliveries). The key now names the run: a repeated call takes the key over and finds
    the run it started, or starts it if it was never stored."""
    from toolbridge.audit import args_digest

    hub, service = make_hub(database_url, ledger, [FLOW])
    dead = IdempotencyStore(hub.database, lease=1.0)  # the killed worker's claim: never renewed
    arguments = {"title": "t", "parts": []}
    async with hub:
        await dead.claim(ME.id, "event-d1", "pipelines.flow", args_digest(arguments), request_id="killed")
        await anyio.sleep(1.5)
        first = await hub.call(ME, "pipelines.flow", arguments, idempotency_key="event-d1")
        assert first.value["state"] == "succeeded" and ledger.calls == ["create t"]
        await hub.idempotency.forget(ME.id, "event-d1")  # as if its stored outcome were gone too
        again = await hub.call(ME, "pipelines.flow", arguments, idempotency_key="event-d1")
        assert again.value["run_id"] == first.value["run_id"] and ledger.calls == ["create t"]
        other = await hub.call(ME, "pipelines.flow", arguments, idempotency_key="event-d2")
        assert other.value["run_id"] != first.value["run_id"] and len(await service.store.runs()) == 2
