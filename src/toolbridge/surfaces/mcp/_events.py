"""Event subscriptions as MCP resources: ``toolbridge://events/<subscription>``, one per subscription.

An agent sees the resource of each subscription it may read (it names the agent, and the agent may call
``events.poll``). Reading ``toolbridge://events/<name>`` answers ``{"events": [], "cursor": <now>}``;
reading ``toolbridge://events/<name>?after=<cursor>`` (``&limit=`` 1-500) answers the events after the
cursor and the cursor to pass next, through the tool ``events.poll`` (authorized and audited like it).
Subscribing to the resource (``resources/subscribe`` in the handshake era, a ``subscriptions/listen``
stream in the 2026-07-28 era) brings ``notifications/resources/updated`` whenever an event the
subscription matches is recorded; the notifier sends them, this module says what exists and reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from mcp.shared.exceptions import MCPError

from toolbridge.errors import NotFound, ToolbridgeError
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, protocol_error

if TYPE_CHECKING:
    from toolbridge import Hub, Principal
    from toolbridge.events import EventService, Subscription
    from toolbridge.surfaces.mcp._bridge import CallContext

__all__ = [
    "EVENTS_PREFIX",
    "event_resources",
    "event_templates",
    "event_uri",
    "is_event_uri",
    "read_event_resource",
    "readable_subscription",
    "serves_events",
]

EVENTS_PREFIX = "toolbridge://events/"
RESOURCE_NOT_FOUND = -32002
_POLL = "events.poll"
_PRIVATE = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete"}


def event_uri(subscription: str) -> str:
    return EVENTS_PREFIX + subscription


def is_event_uri(uri: str) -> bool:
    return uri.startswith(EVENTS_PREFIX)


def serves_events(hub: Hub) -> bool:
    """Whether the hub has event subscriptions an agent could read as resources."""
    service = hub.event_service
    return service is not None and bool(service.subscriptions)


def _readable(hub: Hub, principal: Principal) -> list[Subscription]:
    service = hub.event_service
    if service is None or not any(t.name == _POLL for t in hub.list_tools(principal)):
        return []
    return service.readable(principal)


def event_resources(hub: Hub, principal: Principal) -> list[dict[str, Any]]:
    """The resources of the subscriptions ``principal`` may read."""
    return [
        {
            "uri": event_uri(sub.name),
            "name": f"events/{sub.name}",
            "title": f"Events: {sub.name}",
            "description": (
                f"Events of the subscription {sub.name!r} ({_matching(sub)}). Subscribe to be told when "
                f"one arrives; read {event_uri(sub.name)}?after=<cursor> for the events after a cursor "
                "(reading it without one answers the current cursor)."
            ),
            "mimeType": "application/json",
        }
        for sub in _readable(hub, principal)
    ]


def event_templates(hub: Hub, principal: Principal) -> list[dict[str, Any]]:
    if not _readable(hub, principal):
        return []
    return [
        {
            "uriTemplate": EVENTS_PREFIX + "{subscription}{?after,limit}",
            "name": "events",
            "title": "Events of a subscription after a cursor",
            "description": "The events of a subscription after a cursor, and the cursor to pass next.",
            "mimeType": "application/json",
        }
    ]


def _matching(sub: Subscription) -> str:
    parts = [f"{k} {v}" for k, v in (("source", sub.match.source), ("type", sub.match.type)) if v]
    parts += [f"subject {sub.match.subject}"] if sub.match.subject else []
    return ", ".join(parts) or "every event"


def readable_subscription(service: EventService, principal: Principal, uri: str) -> str:
    """The subscription an event resource names, if ``principal`` may read it (else resource not found)."""
    name = _parse(uri)[0]
    try:
        return service.subscription_for(principal, name).name
    except NotFound as exc:
        raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r}; list them with resources/list") from exc


async def read_event_resource(hub: Hub, caller: CallContext, uri: str) -> dict[str, Any]:
    """``resources/read`` of an event resource: ``events.poll`` as the caller (authorized, audited)."""
    name, after, limit = _parse(uri)
    arguments: dict[str, Any] = {"subscription": name, "cursor": after}
    if limit is not None:
        arguments["limit"] = limit
    try:
        result = await hub.call(caller.principal, _POLL, arguments, request_id=caller.request_id)
    except NotFound as exc:
        raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r}; list them with resources/list") from exc
    except ToolbridgeError as exc:
        error = protocol_error(exc)
        raise MCPError(error.code, error.message, error.data) from exc
    text = result.text if result.value is None else json.dumps(result.value, separators=(",", ":"))
    return {"contents": [{"uri": uri, "mimeType": "application/json", "text": text}], **_PRIVATE}


def _parse(uri: str) -> tuple[str, int | None, int | None]:
    """``toolbridge://events/<name>?after=<int>&limit=<int>`` → (name, after, limit)."""
    parts = urlsplit(uri)
    name = parts.path.lstrip("/")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"after", "limit"})
    if unknown or not name:
        raise MCPError(
            INVALID_PARAMS,
            f"bad event resource {uri!r}",
            {"hint": f"use {EVENTS_PREFIX}<subscription>?after=<cursor>&limit=<1-500>"},
        )
    return name, _integer(query, "after", uri), _integer(query, "limit", uri)


def _integer(query: dict[str, list[str]], key: str, uri: str) -> int | None:
    values = query.get(key)
    if not values:
        return None
    try:
        return int(values[-1])
    except ValueError as exc:
        raise MCPError(
            INVALID_PARAMS, f"{key} in {uri!r} must be a whole number, got {values[-1]!r}"
        ) from exc
