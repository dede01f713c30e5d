"""Events: the latest events of the event log (what ``toolbridge events tail`` prints), filtered by source
and type, each read audited as the operator's action."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.events import EventFilter
from toolbridge.surfaces.admin._web import admin_of, operator, render

__all__ = ["routes"]

SHOWN = 50
_PAYLOAD_CHARS = 2000
"""Characters of an event's payload shown in the list (``toolbridge events show ID`` prints all)."""


async def events_page(request: Request) -> Response:
    who = await operator(request)
    hub = admin_of(request).hub
    source = request.query_params.get("source", "").strip()
    kind = request.query_params.get("type", "").strip()
    context = {"source": source, "type": kind, "events": [], "configured": hub.event_service is not None}
    if hub.event_service is not None:
        match = EventFilter(source=source or None, type=kind or None)
        async with hub.perform(who.principal, "(events.tail)", {"source": source, "type": kind}, scope=None):
            found = await hub.event_service.log.tail(SHOWN, match=match)
        context["events"] = [{**e.as_dict(), "payload": _payload(e.payload)} for e in reversed(found)]
    return render(request, "events.html", context, who=who)


def _payload(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _PAYLOAD_CHARS else text[: _PAYLOAD_CHARS - 1] + "…"


routes = [Route("/events", events_page)]
