"""``/v1/runs``: pipeline runs. Starting one is a call of the pipeline's tool and reading one a call of
``pipelines.status`` (``Hub.call``: scoped, validated, audited); a cancel is one audited action. A caller
sees only its own runs: another's answers exactly like a missing one (404)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from toolbridge.errors import NotFound
from toolbridge.hub import Hub
from toolbridge.pipelines._service import pipeline_service
from toolbridge.policy import Principal
from toolbridge.surfaces._request import api_key

__all__ = ["runs_router"]

runs_router = APIRouter(prefix="/runs", tags=["pipelines"])
RunState = Literal["queued", "running", "compensating", "succeeded", "failed", "cancelled", "needs_attention"]
"""``pipelines._store``'s ACTIVE and TERMINAL states (a misspelt one listed nothing, silently)."""


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline: Annotated[str, Field(max_length=64, description="the pipeline's name")]
    input: Annotated[dict[str, Any], Field(default_factory=dict, description="the run's input")]


async def _caller(request: Request) -> tuple[Hub, Principal]:
    hub: Hub = request.app.state.hub
    return hub, await hub.authenticate(api_key(request.headers), request_id=_request_id(request))


def _request_id(request: Request) -> str | None:
    return request.headers.get("x-request-id")


@runs_router.post("", summary="Start a pipeline run; the result if it ends within the call deadline")
async def start_run(body: StartRun, request: Request) -> dict[str, Any]:
    hub, caller = await _caller(request)
    result = await hub.call(caller, f"pipelines.{body.pipeline}", body.input, request_id=_request_id(request))
    return dict(result.value)


@runs_router.get("", summary="The caller's recent pipeline runs, newest first")
async def list_runs(
    request: Request, state: RunState | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    hub, caller = await _caller(request)
    service = pipeline_service(hub)
    runs = await service.store.runs(principal=caller.id, state=state, limit=limit) if service else []
    return {"runs": [r.as_dict() for r in runs]}


@runs_router.get("/{run_id}", summary="One run: its state, each step's state, the output or the error")
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    hub, caller = await _caller(request)
    result = await hub.call(caller, "pipelines.status", {"run_id": run_id}, request_id=_request_id(request))
    return dict(result.value)


@runs_router.post("/{run_id}/cancel", summary="Stop a run; the completed steps are undone (cancelled)")
async def cancel_run(run_id: str, request: Request) -> dict[str, Any]:
    hub, caller = await _caller(request)
    async with hub.perform(
        caller, "pipelines.cancel", {"run_id": run_id}, scope=None, request_id=_request_id(request)
    ):
        service = pipeline_service(hub)
        if service is None:
            raise NotFound(f"no pipeline run {run_id!r} of yours", hint="check the run id from the start")
        run = await service.cancel(run_id, principal=caller)
    return run.as_dict()
