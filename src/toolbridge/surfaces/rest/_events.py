"""``/v1/events``: the caller's subscriptions and their events, through ``Hub.call`` (scoped and audited)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from toolbridge._jsonin import MAX_STORED_INT
from toolbridge.hub import Hub
from toolbridge.policy import Principal
from toolbridge.surfaces._request import api_key

__all__ = ["events_router"]

events_router = APIRouter(prefix="/events", tags=["events"])


async def _caller(request: Request) -> tuple[Hub, Principal]:
    hub: Hub = request.app.state.hub
    return hub, await hub.authenticate(api_key(request.headers), request_id=_request_id(request))


def _request_id(request: Request) -> str | None:
    return request.headers.get("x-request-id")


@events_router.get("/subscriptions", summary="The event subscriptions the caller may read")
async def list_subscriptions(request: Request) -> dict[str, Any]:
    hub, caller = await _caller(request)
    result = await hub.call(caller, "events.subscriptions", {}, request_id=_request_id(request))
    return dict(result.value)


@events_router.get("", summary="Events of one subscription after a cursor; long-polls with wait > 0")
async def list_events(
    request: Request,
    subscription: str,
    cursor: Annotated[
        int | None, Query(ge=0, le=MAX_STORED_INT, description="from the previous answer; omit to start now")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    wait: Annotated[float, Query(ge=0, le=50, description="seconds to wait for a first event")] = 0.0,
) -> dict[str, Any]:
    hub, caller = await _caller(request)
    arguments: dict[str, Any] = {"subscription": subscription, "limit": limit}
    if cursor is not None:
        arguments["cursor"] = cursor
    if wait > 0:
        result = await hub.call(
            caller, "events.wait", {**arguments, "max_wait": wait}, request_id=_request_id(request)
        )
    else:
        result = await hub.call(caller, "events.poll", arguments, request_id=_request_id(request))
    return dict(result.value)
