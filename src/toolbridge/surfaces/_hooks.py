"""``POST /hooks/{source}``: inbound webhooks, verified on the raw bytes, stored, then acknowledged.

The body is read up to the source's cap (413 beyond it, before verification); the answer comes as soon as
the event is durably recorded — processing happens later in the worker. Refusals are problem documents:
401 unsigned, badly signed or stale; 400 malformed; 413 oversized; 404 unknown source. A delivery id seen
before is acknowledged (200, ``"duplicate": true``) and stored once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from toolbridge.errors import BadRequest, NotFound, PayloadTooLarge, ToolbridgeError, problem
from toolbridge.events import EventService
from toolbridge.hub import Hub
from toolbridge.surfaces._request import declared_length, read_body

__all__ = ["hooks_endpoint"]

_PROBLEM = "application/problem+json"


def hooks_endpoint(hub: Hub) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        name = request.path_params["source"]
        try:
            service = _service(hub)
            service.source(name)
            body = await _body(request, service, name)
            receipt = await service.receive(name, body, {k.lower(): v for k, v in request.headers.items()})
        except ToolbridgeError as exc:
            return JSONResponse(problem(exc, instance=request.url.path), exc.status, media_type=_PROBLEM)
        if receipt.challenge is not None:
            return JSONResponse({"challenge": receipt.challenge})
        assert receipt.event is not None
        return JSONResponse({"id": receipt.event.id, "duplicate": receipt.duplicate})

    return receive


def _service(hub: Hub) -> EventService:
    if hub.event_service is None:
        raise NotFound(
            "this hub receives no webhooks", hint="declare sources under 'hooks:' in toolbridge.yaml"
        )
    return hub.event_service


async def _body(request: Request, service: EventService, name: str) -> bytes:
    cap = service.source(name).max_body_bytes
    try:
        return await read_body(request.stream(), limit=cap, declared=declared_length(request.headers))
    except PayloadTooLarge as exc:
        raise service.reject_oversized(name, exc.size) from None
    except ClientDisconnect:
        raise BadRequest("the sender closed the connection before the body was complete") from None
