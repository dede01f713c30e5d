"""Pipelines in a hub: one tool per pipeline and ``pipelines.status``, runs started, awaited and steered.

The service is a connector (``pipelines``) that the hub enters after every other connector, so its
load-time checks see the whole catalog (MCP tools and capabilities included). Calling a pipeline's tool
stores a run and — unless this process runs no pipelines itself — executes it here under a lease, like
a worker would; the call returns the result when the run ends within the call deadline, else the run id
to ask ``pipelines.status`` about. A run whose process stops is resumed by any worker once its lease ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from toolbridge.audit import args_digest, audit_entry
from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.connectors import Invocation
from toolbridge.errors import ConfigurationError, NotFound, StorageError, ToolExecutionError
from toolbridge.pipelines._check import Lines, check_pipelines
from toolbridge.pipelines._config import PipelineWorkerSettings
from toolbridge.pipelines._engine import Engine, Observer
from toolbridge.pipelines._model import Pipeline
from toolbridge.pipelines._store import TERMINAL, Run, RunStore
from toolbridge.policy import Principal
from toolbridge.resilience import ResiliencePolicy, RetryPolicy

__all__ = ["CONNECTOR", "POLICY", "PipelineService", "add_pipelines", "pipeline_service"]

logger = logging.getLogger("toolbridge.pipelines")
CONNECTOR = "pipelines"
_STATUS = f"{CONNECTOR}.status"
_MARGIN = 1.0  # seconds of the call deadline kept for answering
POLICY = ResiliencePolicy(retry=RetryPolicy(max_attempts=1, attempt_timeout=None))
"""A pipeline tool call is never retried by the hub (its steps have their own retries), and only the
call deadline bounds it."""


class PipelineService:
    def __init__(
        self,
        hub: Any,
        pipelines: Sequence[Pipeline] | Mapping[str, Pipeline],
        *,
        settings: PipelineWorkerSettings | None = None,
        lines: Lines | None = None,
        inline: bool = True,
        observer: Observer | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        settings = settings or PipelineWorkerSettings()
        found = list(pipelines.values()) if isinstance(pipelines, Mapping) else list(pipelines)
        self.pipelines: dict[str, Pipeline] = {}
        for pipeline in found:
            if pipeline.name == "status" or pipeline.name in self.pipelines:
                raise ConfigurationError(
                    f"{pipeline.where}: pipelines.{pipeline.name}: this name is taken",
                    hint="'status' is the status tool; give each pipeline its own name",
                )
            self.pipelines[pipeline.name] = pipeline
        self._hub = hub
        self.settings = settings
        self.store = RunStore(hub.database, lease=settings.lease)
        self.engine = Engine(
            hub,
            self.store,
            self.pipelines,
            compensation_attempts=settings.compensation_attempts,
            observer=observer,
            sleep=sleep,
        )
        self.engine.on_finished = self._finished
        self.inline = inline
        """Execute runs started here in this process (False: leave them to ``toolbridge worker``)."""
        self.owner = f"{socket.gethostname()[:20]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._lines = lines
        self._tools = {t.name: t for t in self._make_tools()}
        self.on_queued: list[Callable[[], None]] = []
        """Called when a run is queued here for the workers (a worker in this process wakes)."""
        self._ended: dict[str, _Ending] = {}
        """Runs executing here, by id: set when the run stops (with the run as it ended)."""
        self._tg: TaskGroup | None = None

    # -- connector protocol ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return CONNECTOR

    def tools(self) -> Sequence[Tool]:
        return list(self._tools.values())

    async def __aenter__(self) -> PipelineService:
        check_pipelines(self.pipelines, self._hub.catalog, self._lines)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._tg is not None:
            tg, self._tg = self._tg, None
            tg.cancel_scope.cancel()  # runs in flight keep their state; a worker resumes them
            await tg.__aexit__(None, None, None)

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        if tool.name == _STATUS:
            return await self.status(str(arguments["run_id"]), principal=invocation.principal)
        run = await self.start(
            tool.operation,
            invocation.principal,
            arguments,
            request_id=invocation.request_id,
            key=invocation.idempotency_key,
        )
        now = self._hub.resilience.clock()
        left = (invocation.deadline - now - _MARGIN) if invocation.deadline is not None else 30.0
        return _answer(await self.wait(run.id, max(0.0, left)))

    # -- runs --------------------------------------------------------------------------------------

    async def start(
        self,
        pipeline: str,
        principal: Principal,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        key: str | None = None,
    ) -> Run:
        """Store a new run; execute it here when this process runs pipelines (else a worker will).

        ``key``: the call's idempotency key, which names the run: a call repeated with it (its process
        was killed mid-call, its key taken over) finds that run, if it was stored, instead of a second."""
        if pipeline not in self.pipelines:
            raise NotFound(f"no pipeline {pipeline!r}", hint="see 'toolbridge pipelines list'")
        run_id = _keyed_run_id(pipeline, principal.id, key) if key is not None else None
        if run_id is not None and (found := await self.store.get(run_id)) is not None:
            return found
        owner = self.owner if self.inline and self._tg is not None else None
        run = await self.store.create(
            pipeline, principal.id, arguments, request_id=request_id, owner=owner, run_id=run_id
        )
        if owner is not None:
            assert self._tg is not None
            self._ended[run.id] = _Ending()
            self._tg.start_soon(self.execute, run)
        else:
            for wake in self.on_queued:
                wake()
        return run

    async def execute(self, run: Run) -> str | None:
        """Run a leased run to its end, renewing its lease meanwhile (lost lease: stop, leave it; None)."""
        state: str | None = None  # the heartbeat cancels the run when the lease is gone
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat, run, tg.cancel_scope)
            try:
                state = await self.engine.execute(run)
            finally:
                tg.cancel_scope.cancel()
                if (ended := self._ended.pop(run.id, None)) is not None:
                    ended.event.set()
        return state

    async def _heartbeat(self, run: Run, scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(self.store.lease / 3)
            if not await self.store.renew(run):
                logger.warning("pipeline run %s: lease lost; another worker takes it over", run.id)
                scope.cancel()
                return

    async def wait(self, run_id: str, seconds: float) -> Run:
        """The run once it ended, or as it stands after ``seconds``."""
        ended = self._ended.get(run_id)
        with anyio.move_on_after(seconds):
            if ended is not None:
                await ended.event.wait()
            else:
                await self._poll_until_ended(run_id)
        if ended is not None and ended.run is not None:
            return ended.run  # as its last write stored it
        found = await self.store.get(run_id)
        if found is None:  # created here and stopped before its first write (the database failed)
            raise StorageError(
                f"pipeline run {run_id} could not be stored; none of its steps ran",
                hint="the database may be down; start the run again",
            )
        return found

    async def _poll_until_ended(self, run_id: str) -> None:
        """A run executed elsewhere (a worker): its state is only in the database."""
        while True:
            run = await self.store.get(run_id)
            if run is None or run.state in TERMINAL:
                return
            await anyio.sleep(0.1)  # bounded by the caller's deadline

    async def status(self, run_id: str, *, principal: Principal | None = None) -> dict[str, Any]:
        run = await self._visible(run_id, principal)
        steps = await self.store.steps(run_id)
        return {**run.as_dict(), "steps": [s.as_dict() for s in steps], "audit_request_id": run.id}

    async def cancel(self, run_id: str, *, principal: Principal | None = None) -> Run:
        """Ask a run to stop; its worker undoes the completed steps (state ``cancelled``)."""
        await self._visible(run_id, principal)
        run = await self.store.cancel(run_id, principal=principal.id if principal else None)
        assert run is not None
        return run

    async def resume(self, run_id: str, *, principal: Principal | None = None) -> Run:
        """Continue a run now: one that ended ``needs_attention`` compensates again; an active run that
        nobody holds is executed here."""
        run = await self._visible(run_id, principal)
        if run.state == "needs_attention":
            await self.store.reopen(run_id, principal=None)
        claimed = await self.store.claim(run_id, owner=self.owner)
        if claimed is not None:
            await self.execute(claimed)
        found = await self.store.get(run_id)
        assert found is not None
        return found

    async def _visible(self, run_id: str, principal: Principal | None) -> Run:
        """The run, if ``principal`` (None: the operator) may see it; else the same 404 as a missing one."""
        owner = principal.id if principal is not None and principal.kind == "agent" else None
        run = await self.store.get(run_id, principal=owner)
        if run is None:
            raise NotFound(f"no pipeline run {run_id!r} of yours", hint="check the run id from the start")
        return run

    async def _finished(self, run: Run, state: str) -> None:
        """A run ended: an audit row (its steps are the rows whose request id starts with the run id)
        and an event ``toolbridge.pipeline.<state>``."""
        if (ended := self._ended.get(run.id)) is not None:
            ended.run = run
        error = None if state == "succeeded" else state
        entry = audit_entry(
            run.id,
            run.principal,
            f"{CONNECTOR}.{run.pipeline}",
            args_digest(run.input),
            outcome="ok" if error is None else "error",
            error_code=error,
        )
        await self._hub.audit.record(entry)
        service = getattr(self._hub, "event_service", None)
        if service is not None:
            payload = {"run_id": run.id, "pipeline": run.pipeline, "state": state}
            service.notice("toolbridge.pipelines", f"toolbridge.pipeline.{state}", run.pipeline, payload)
        if state == "needs_attention":
            logger.error("pipeline run %s (%s) needs attention: a compensation failed", run.id, run.pipeline)

    # -- tools -------------------------------------------------------------------------------------

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        """A keyed call of a pipeline tool carries its key into the run's id (see :meth:`start`), so the
        hub may call it again after a crash: an orphaned key is taken over, not answered
        ``outcome_unknown`` — which left an event's delivery replaying that answer for its whole schedule
        although its run had succeeded, or had never been stored (the event then never ran)."""
        return None if tool.name == _STATUS else "the run id"

    def _make_tools(self) -> list[Tool]:
        made = [
            Tool(
                name=f"{CONNECTOR}.{p.name}",
                connector=CONNECTOR,
                description=(p.description or f"Run the pipeline {p.name!r}")
                + f" (steps: {', '.join(s.name for s in p.steps)}). Returns the result when it finishes "
                "in time, else a run_id to pass to pipelines.status.",
                input_schema=dict(p.input_schema),
                annotations=ToolAnnotations(open_world=True),
            )
            for p in self.pipelines.values()
        ]
        made.append(
            Tool(
                name=_STATUS,
                connector=CONNECTOR,
                description="The state of a pipeline run: each step's state, the output or the error.",
                input_schema={
                    "type": "object",
                    "properties": {"run_id": {"type": "string", "description": "the id a pipeline returned"}},
                    "required": ["run_id"],
                    "additionalProperties": False,
                },
                annotations=ToolAnnotations(read_only=True, open_world=False),
            )
        )
        return made


class _Ending:
    __slots__ = ("event", "run")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.run: Run | None = None


def _answer(run: Run) -> dict[str, Any]:
    if run.state == "succeeded":
        return {"run_id": run.id, "state": run.state, "output": run.output}
    if run.state in TERMINAL:
        error = run.error or {}
        undone = "undone" if run.state in ("failed", "cancelled") else "NOT all undone (needs attention)"
        raise ToolExecutionError(
            f"pipeline run {run.id} ended {run.state} at step {error.get('step', '?')}: "
            f"{error.get('detail') or error.get('title') or 'failed'}; the completed steps were {undone}",
            hint=f"see pipelines.status with run_id {run.id!r}",
        )
    return {
        "run_id": run.id,
        "state": run.state,
        "hint": f"still running; call pipelines.status with run_id {run.id!r}",
    }


def pipeline_service(hub: Any) -> PipelineService | None:
    """The hub's pipeline service, if pipelines are configured."""
    try:
        found = hub.connector(CONNECTOR)
    except KeyError:
        return None
    return found if isinstance(found, PipelineService) else None


def add_pipelines(hub: Any, pipelines: Sequence[Pipeline], **options: Any) -> PipelineService:
    """Add pipelines to a hub built in Python (before it starts); ``options`` as :class:`PipelineService`."""
    service = PipelineService(hub, pipelines, **options)
    hub.add_connector(service, policy=POLICY)
    return service


def _keyed_run_id(pipeline: str, principal: str, key: str) -> str:
    """The id of the run a keyed call of ``pipeline`` by ``principal`` starts (16 hex digits, as others)."""
    return hashlib.sha256(f"{pipeline}\0{principal}\0{key}".encode()).hexdigest()[:16]
