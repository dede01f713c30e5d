"""Running a leased run: steps in order, state stored before and after each effect, compensation on failure.

Each step iteration has a durable key (``01.transform``, ``02.upload[3]``, ``03.sub/00.fetch``) and calls
its tool through ``Hub.call`` as the run's principal with the idempotency key ``pl-<run>-<key>``: the
hub replays a finished call instead of calling again, and connectors that send keys upstream (an
operation's ``Idempotency-Key`` header) make a call that was cut off by a crash apply once when the
resumed run repeats it. A step found ``done`` in the store is never called again; one found
``running`` (its worker died mid-call, or before the step's outcome was written) is called again with
the same key. A step's outcome is written with the run's next write (the next step's start, or the
run's end: ``RunStore.note_done``), so a step costs the engine one transaction. When the step's tool is
safe to repeat, that transaction also claims the step's idempotency key (``Hub.early_claim``), which the
hub's call then does not claim again — a claim left in flight by an earlier holder of the run's lease
is taken over there, under the lease, and the call repeated under the same key — and the key's
completion is written with the step's outcome, by the run's next write (one transaction per step in
all). Any other tool's call claims and completes its key itself, its claim as late as it can.

When a step fails for good — its error is not retryable, or not safe to repeat, or its retries are used
up, or its output fails its check — the completed steps are undone in the reverse order of completion
by their compensation calls (rendered and stored when each step completed). A failing compensation is
retried; when its attempts are used up the run ends ``needs_attention`` and an event says so.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    CircuitOpen,
    KeyInFlight,
    LeaseLost,
    RateLimited,
    StorageError,
    TokenRefreshFailed,
    ToolbridgeError,
    ToolExecutionError,
    UpstreamBusy,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
    problem,
)
from toolbridge.pipelines._model import Pipeline, Step
from toolbridge.pipelines._store import Claim, Joined, Run, RunStore, StepRecord
from toolbridge.policy import Principal
from toolbridge.resilience._idempotency import IdempotencyStore
from toolbridge.resilience._policy import RETRYABLE_STATUSES

__all__ = ["Engine", "Observer"]

logger = logging.getLogger("toolbridge.pipelines")

Observer = Callable[[str, str, str], None]
"""Called with (phase, run id, step key) at ``started`` (stored, not yet called), ``called`` (the call
returned, its outcome not yet noted) and ``noted`` (the outcome is noted, to be written with the run's
next write): tests crash a worker there."""

_MAX_WAITS = 50


class StepFailed(Exception):
    """A step failed for good; the run compensates. Internal to the engine."""

    def __init__(self, key: str, error: Mapping[str, Any]) -> None:
        super().__init__(key)
        self.key = key
        self.error = dict(error)


class _Cancelled(Exception):
    pass


@dataclass(slots=True)
class _Ctx:
    run: Run
    principal: Principal
    records: dict[str, StepRecord] = field(default_factory=dict)


class Engine:
    def __init__(
        self,
        hub: Any,
        store: RunStore,
        pipelines: Mapping[str, Pipeline],
        *,
        compensation_attempts: int = 5,
        observer: Observer | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._hub = hub
        self._sleep = sleep
        self._store = store
        self.pipelines = pipelines
        self._comp_attempts = compensation_attempts
        self.observer = observer
        self._rng = rng or random.Random()
        self.on_finished: Callable[[Run, str], Awaitable[None]] | None = None

    async def execute(self, run: Run) -> str | None:
        """Drive a leased run to its end; returns the final state (None: the lease was lost)."""
        try:
            return await self._execute(run)
        except LeaseLost:
            logger.warning("pipeline run %s: lease taken over by another worker; leaving it", run.id)
            return None
        finally:  # what is noted and not written is redone by the run's next owner (same keys)
            await self._release_keys(run, self._store.forget_noted(run))

    async def _release_keys(self, run: Run, writes: list[Joined]) -> None:
        """Complete the keys of calls whose outcome was noted but not written (the lease was lost), so
        the run's next owner replays them instead of waiting for their claims (renewed while this
        process lives)."""
        if not writes:
            return
        with anyio.CancelScope(shield=True):
            try:
                async with self._hub.database.transaction() as conn:
                    for write in writes:
                        await write(conn)
            except StorageError as exc:  # the next owner takes the claims over under the run's lease
                logger.warning("pipeline run %s: could not store its last calls' outcomes: %s", run.id, exc)

    async def _execute(self, run: Run) -> str:
        records = list(run.steps) if run.steps is not None else await self._store.steps(run.id)
        try:
            principal = await self._hub.agents.principal_for(run.principal)
        except AuthenticationError as exc:
            return await self._orphaned(run, records, exc)
        ctx = _Ctx(run, principal, {r.key: r for r in records})
        if run.state == "compensating":
            return await self._unwind(ctx, run.error or {}, "cancelled" if run.cancel_requested else "failed")
        pipeline = self.pipelines.get(run.pipeline)
        if pipeline is None:
            error = problem(
                BadRequest(f"pipeline {run.pipeline!r} is no longer defined", hint="define it again")
            )
            return await self._unwind(ctx, error, "failed")
        try:
            output = await self._pipeline(ctx, pipeline, run.input, prefix="")
        except StepFailed as exc:
            return await self._unwind(ctx, {**exc.error, "step": exc.key}, "failed")
        except _Cancelled:
            return await self._unwind(
                ctx, {"title": "cancelled", "detail": "the run was cancelled"}, "cancelled"
            )
        await self._finished(await self._store.finish(run, "succeeded", output=output), "succeeded")
        return "succeeded"

    async def _pipeline(self, ctx: _Ctx, pipeline: Pipeline, arguments: Any, *, prefix: str) -> Any:
        context: dict[str, Any] = {"input": arguments, "steps": {}}
        last: Any = None
        for i, step in enumerate(pipeline.steps):
            last = await self._step(ctx, step, f"{prefix}{i:02d}.{step.name}", context)
            context["steps"][step.name] = last
        return pipeline.output.render(context) if pipeline.output is not None else last

    async def _step(self, ctx: _Ctx, step: Step, key: str, context: dict[str, Any]) -> Any:
        if step.when is not None and not _truthy(step.when.evaluate(context)):
            if key not in ctx.records:
                await self._store.step_skipped(ctx.run, key, step.tool or f"pipeline:{step.pipeline}")
            return None
        if step.for_each is None:
            return await self._one(ctx, step, key, context)
        items = step.for_each.evaluate(context)
        if not isinstance(items, list):
            error = BadRequest(f"step {step.name!r}: for_each gave {type(items).__name__}, not a list")
            raise StepFailed(key, problem(error))
        return await self._each(ctx, step, key, context, items)

    async def _each(self, ctx: _Ctx, step: Step, key: str, context: dict[str, Any], items: list[Any]) -> Any:
        outputs: list[Any] = [None] * len(items)
        failures: list[StepFailed | _Cancelled] = []
        limiter = anyio.CapacityLimiter(step.concurrency)

        async def one(index: int, item: Any) -> None:
            async with limiter:
                if failures:
                    return
                scope = {**context, "item": item, "index": index}
                try:
                    outputs[index] = await self._one(ctx, step, f"{key}[{index}]", scope)
                except (StepFailed, _Cancelled) as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as tg:
            for index, item in enumerate(items):
                tg.start_soon(one, index, item)
        if failures:
            raise failures[0]
        return outputs

    async def _one(self, ctx: _Ctx, step: Step, key: str, scope: dict[str, Any]) -> Any:
        found = ctx.records.get(key)
        if found is not None and found.state == "failed":
            raise StepFailed(key, found.error or {})
        if step.pipeline is not None:
            output = await self._nested(ctx, step, key, scope)
        elif found is not None and found.state != "running":
            output = found.output
        else:
            output = await self._run_tool(ctx, step, key, scope, found.attempts if found else 0)
        bad = _check(step, output, scope)
        if bad is not None:
            raise StepFailed(key, problem(bad))
        return output

    async def _run_tool(self, ctx: _Ctx, step: Step, key: str, scope: dict[str, Any], attempts: int) -> Any:
        assert step.tool is not None
        arguments = step.arguments.render(scope)
        output, attempts, then = await self._call_step(ctx, step, key, arguments, attempts)
        compensation = None
        if step.compensate is not None:
            undo_args = step.compensate.arguments.render({**scope, "output": output})
            compensation = {"tool": step.compensate.tool, "arguments": undo_args}
        self._store.note_done(
            ctx.run, key, output, compensation, tool=step.tool, attempts=attempts, then=then
        )
        self._observe("noted", ctx.run, key)
        return output

    async def _nested(self, ctx: _Ctx, step: Step, key: str, scope: dict[str, Any]) -> Any:
        pipeline = self.pipelines[step.pipeline or ""]
        return await self._pipeline(ctx, pipeline, step.arguments.render(scope), prefix=f"{key}/")

    async def _call_step(
        self, ctx: _Ctx, step: Step, key: str, arguments: Any, attempts: int
    ) -> tuple[Any, int, Joined | None]:
        """Call the step's tool until it succeeds or fails for good: its output, the attempts made and
        the completion of its key when that is left to the step's outcome's write."""
        assert step.tool is not None
        waits = 0
        while True:
            attempts += 1
            claim = self._claim(ctx, step.tool, arguments, key)
            started = await self._store.step_started(ctx.run, key, step.tool, attempts=attempts, claim=claim)
            if started.cancel_requested:
                raise _Cancelled()
            self._observe("started", ctx.run, key)
            try:
                result = await self._call(
                    ctx, step.tool, arguments, key, step.timeout, claimed=started.claimed
                )
            except ToolbridgeError as exc:
                action = self._classify(exc, step.tool)
                delay = _delay(exc, step, attempts, self._rng)
                if action == "wait" and waits < _MAX_WAITS:
                    waits, attempts = waits + 1, attempts - 1
                elif action != "retry" or attempts >= step.retry.attempts:
                    await self._store.step_state(ctx.run, key, "failed", error=problem(exc))
                    raise StepFailed(key, problem(exc)) from exc
                await self._forget(ctx, key, exc)
                await self._sleep(delay)
                continue
            self._observe("called", ctx.run, key)
            return result.value, attempts, self._completion(ctx, key, result) if started.claimed else None

    def _claim(self, ctx: _Ctx, tool: str, arguments: Any, key: str) -> Claim | None:
        """The step's idempotency key claimed in the transaction that records its start, when the tool
        is safe to repeat (None: left to the hub's call, as for any other call)."""
        early = self._hub.early_claim(tool, arguments) if isinstance(arguments, Mapping) else None
        if early is None:
            return None
        name, digest = early
        idem, request_id = _idempotency_key(ctx.run, key), _request_id(ctx.run, key)
        keys: IdempotencyStore = self._hub.idempotency
        return keys.joined_claim(ctx.principal.id, idem, name, digest, request_id=request_id)

    def _completion(self, ctx: _Ctx, key: str, result: Any) -> Joined:
        """The step's key completed with ``result``, in the transaction that writes the step's outcome."""
        idem, stored = _idempotency_key(ctx.run, key), self._hub.stored_result(result)
        return IdempotencyStore.joined_completion(ctx.principal.id, idem, result=stored)

    async def _call(
        self, ctx: _Ctx, tool: str, arguments: Any, key: str, limit: float | None, *, claimed: bool = False
    ) -> Any:
        """The call's result (a claimed key's success is left for the caller to store: ``_completion``)."""
        idem = _idempotency_key(ctx.run, key)
        with anyio.move_on_after(limit if limit is not None else float("inf")) as scope:
            result = await self._hub.delegate(
                ctx.principal,
                tool,
                arguments,
                idempotency_key=idem,
                request_id=_request_id(ctx.run, key),
                claimed=claimed,
                defer_completion=claimed,
            )
            if result.queued:
                raise UpstreamBusy(f"{tool!r} queued the call for later", tool=tool)
            return result
        assert scope.cancelled_caught
        with anyio.CancelScope(shield=True):
            await self._hub.idempotency.release(ctx.principal.id, idem)
        raise UpstreamTimeout(f"step call to {tool!r} did not finish within {limit:g} s", tool=tool)

    def _classify(self, exc: ToolbridgeError, tool: str) -> str:
        """``wait``: never reached the upstream, try again (no attempt used); ``retry``: failed transiently
        and safe to repeat; ``fail``: anything else."""
        if isinstance(
            exc, RateLimited | CircuitOpen | UpstreamBusy | StorageError | TokenRefreshFailed | KeyInFlight
        ):
            return "wait"
        if isinstance(exc, UpstreamUnavailable) and not exc.sent:
            return "retry"
        if not _transient(exc) or not isinstance(exc, UpstreamError) or exc.retried:
            return "fail"  # retried: the connector's policy used its attempts on it (one layer retries)
        return "retry" if self._hub.safe_to_repeat(tool) else "fail"

    def _undo_again(self, exc: ToolbridgeError, tool: str) -> bool:
        """Whether a failed compensation is tried again: what a step would retry, and a transient failure
        the connector's policy already retried when the tool is safe to repeat (an undo outlasts an
        outage). Never a permanent failure, nor one that may have been applied by a tool that is not safe
        to repeat (a refund sent twice): the run ends ``needs_attention`` for a person to look."""
        if self._classify(exc, tool) != "fail":
            return True
        return _transient(exc) and self._hub.safe_to_repeat(tool)

    async def _forget(self, ctx: _Ctx, key: str, exc: ToolbridgeError) -> None:
        """Drop the hub's stored failure for this step's key, so the retry is really attempted."""
        if not isinstance(exc, KeyInFlight):
            await self._hub.idempotency.forget(ctx.principal.id, _idempotency_key(ctx.run, key))

    # -- undoing -----------------------------------------------------------------------------------

    async def _unwind(self, ctx: _Ctx, error: Mapping[str, Any], end: str) -> str:
        run = ctx.run
        await self._store.set_state(run, "compensating", error=error)
        records = await self._store.steps(run.id)
        todo = [r for r in records if r.state in ("done", "compensating") and r.compensation]
        failed = 0
        for record in sorted(todo, key=lambda r: -(r.seq or 0)):
            if not await self._undo(ctx, record):
                failed += 1
        state = "needs_attention" if failed else end
        await self._finished(await self._store.finish(run, state, error=error), state)
        return state

    async def _orphaned(self, run: Run, records: list[StepRecord], exc: AuthenticationError) -> str:
        """A run whose principal was removed or revoked: nothing more runs as it, undoing included. It ends
        failed, or needs_attention when completed steps are left for an operator to undo."""
        left = [r.key for r in records if r.state in ("done", "compensating") and r.compensation]
        error = problem(exc)
        if left:
            error["detail"] = f"{error['detail']}; its completed steps {', '.join(left)} were not undone"
        state = "needs_attention" if left else "failed"
        logger.warning("pipeline run %s: %s; it ends %s", run.id, error["detail"], state)
        await self._finished(await self._store.finish(run, state, error=error), state)
        return state

    async def _undo(self, ctx: _Ctx, record: StepRecord) -> bool:
        assert record.compensation is not None
        tool = str(record.compensation["tool"])
        arguments = record.compensation.get("arguments") or {}
        await self._store.step_state(ctx.run, record.key, "compensating")
        key = f"{record.key}~undo"
        last: ToolbridgeError | None = None
        attempt = waits = 0
        while attempt < self._comp_attempts:
            attempt += 1
            try:
                await self._call(ctx, tool, arguments, key, None)
            except ToolbridgeError as exc:
                last = exc
                logger.warning("pipeline run %s: compensation of %s failed: %s", ctx.run.id, record.key, exc)
                if not self._undo_again(exc, tool):
                    break
                if self._classify(exc, tool) == "wait" and waits < _MAX_WAITS:
                    # never reached the upstream (e.g. its key still held by a stopped worker): no attempt
                    waits, attempt = waits + 1, attempt - 1
                await self._forget(ctx, key, exc)
                await self._sleep(_undo_delay(exc, max(attempt, 1), self._rng))
                continue
            await self._store.step_state(ctx.run, record.key, "compensated")
            return True
        assert last is not None
        await self._store.step_state(ctx.run, record.key, "compensation_failed", error=problem(last))
        return False

    async def _finished(self, run: Run, state: str) -> None:
        if self.on_finished is not None:
            await self.on_finished(run, state)

    def _observe(self, phase: str, run: Run, key: str) -> None:
        if self.observer is not None:
            self.observer(phase, run.id, key)


def _idempotency_key(run: Run, key: str) -> str:
    return f"pl-{run.id}-{key}"[:255]


def _request_id(run: Run, key: str) -> str:
    return f"{run.id}/{key}"[:64]


def _transient(exc: ToolbridgeError) -> bool:
    """A failure the same call may not meet again: a timeout, an unreachable upstream, a retryable status."""
    return isinstance(exc, UpstreamTimeout | UpstreamUnavailable) or (
        isinstance(exc, UpstreamStatusError) and exc.upstream_status in RETRYABLE_STATUSES
    )


def _truthy(value: Any) -> bool:
    """JMESPath truth: false, null, empty strings, lists and objects are false; numbers are true."""
    return not (value is None or value is False or value in ("", [], {}))


def _delay(exc: ToolbridgeError, step: Step, attempt: int, rng: random.Random) -> float:
    wait = getattr(exc, "retry_after", None)
    jitter = rng.uniform(0, step.retry.delay_cap(attempt))
    return max(float(wait), jitter) if isinstance(wait, int | float) else jitter


def _undo_delay(exc: ToolbridgeError, attempt: int, rng: random.Random) -> float:
    """Before a compensation is tried again: full jitter doubling from 0.5 s (cap 30 s), or longer when
    the failure said when to come back (a key in flight names when its claim ends)."""
    jitter = rng.uniform(0, min(30.0, 0.5 * 2 ** (attempt - 1)))
    wait = getattr(exc, "retry_after", None)
    return max(float(wait), jitter) if isinstance(wait, int | float) else jitter


def _check(step: Step, output: Any, scope: Mapping[str, Any]) -> ToolbridgeError | None:
    """Why ``output`` fails the step's check (None: it passes)."""
    if step.check.schema is not None:
        import jsonschema

        errors = list(jsonschema.Draft202012Validator(step.check.schema).iter_errors(output))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(the output)"
            return ToolExecutionError(
                f"step {step.name!r}: the output of {step.target} does not match its schema at {where}: "
                f"{errors[0].message}",
                hint="the upstream answered something unexpected; the run's earlier steps are undone",
            )
    for predicate in step.check.predicates:
        if not _truthy(predicate.evaluate({**scope, "output": output})):
            return ToolExecutionError(
                f"step {step.name!r}: the output of {step.target} fails the check {predicate.source!r}",
                hint="the upstream answered something unexpected; the run's earlier steps are undone",
            )
    return None
