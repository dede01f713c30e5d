"""``events.*`` tools: agents without notifications read their subscriptions with a cursor."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from toolbridge._jsonin import MAX_STORED_INT
from toolbridge.connectors import Invocation
from toolbridge.resilience import BreakerPolicy, ResiliencePolicy, RetryPolicy

if TYPE_CHECKING:
    from toolbridge.events._service import EventService
    from toolbridge.hub import Hub

__all__ = ["add_event_tools", "fit_page"]

_MAX_WAIT = 50.0
Cursor = Annotated[int | None, Field(ge=0, le=MAX_STORED_INT)]


LONG_POLLS = ResiliencePolicy(
    retry=RetryPolicy(max_attempts=1, attempt_timeout=None), breaker=BreakerPolicy(enabled=False)
)
"""In-process tools that may wait up to 50 s for news: only the call deadline bounds them. The default
policy cut each attempt at 20 s and retried it as a timeout until the 60 s call deadline (a 504 for every
wait over 20 s), and the timeouts opened the connector's breaker."""


def add_event_tools(hub: Hub, service: EventService) -> None:
    """Register ``events.subscriptions``, ``events.poll`` and ``events.wait`` (read-only, audited)."""
    hub.resilience.configure("events", LONG_POLLS)

    @hub.tool(connector="events", read_only=True, blocking=False)
    async def subscriptions(invocation: Invocation) -> dict[str, Any]:
        """The event subscriptions you may read, with what each one matches."""
        return {
            "subscriptions": [
                {"name": s.name, "source": s.match.source, "type": s.match.type, "subject": s.match.subject}
                for s in service.readable(invocation.principal)
            ],
            "next": ["events.poll with a subscription name, then pass back the cursor it returns"],
        }

    @hub.tool(connector="events", read_only=True, blocking=False)
    async def poll(
        subscription: str, invocation: Invocation, cursor: Cursor = None, limit: int = 50
    ) -> dict[str, Any]:
        """Events of a subscription after a cursor, without waiting.

        Args:
            subscription: the subscription's name (see events.subscriptions).
            cursor: the cursor the previous answer returned; omit it to start from now.
            limit: at most this many events (1-500).
        """
        page = await service.poll(invocation.principal, subscription, cursor, limit=_limit(limit))
        return fit_page(page, hub.limits.max_result_bytes)

    @hub.tool(connector="events", read_only=True, blocking=False)
    async def wait(
        subscription: str,
        invocation: Invocation,
        cursor: Cursor = None,
        max_wait: float = 30.0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """Wait (up to max_wait seconds, at most 50) for events of a subscription after a cursor.

        Args:
            subscription: the subscription's name (see events.subscriptions).
            cursor: the cursor the previous answer returned; omit it to wait for the next event.
            max_wait: seconds to wait for a first event; the answer is empty when none came.
            limit: at most this many events (1-500).
        """
        wait_for = min(max(max_wait, 0.0), _MAX_WAIT)
        page = await service.poll(
            invocation.principal, subscription, cursor, limit=_limit(limit), wait=wait_for
        )
        return fit_page(page, hub.limits.max_result_bytes)


def _limit(limit: int) -> int:
    return min(max(limit, 1), 500)


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ROOM = 256
"""Bytes kept free under the cap for the page's own keys and the cursor."""


def fit_page(page: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """``page`` (``events`` and ``cursor``) cut to fit a result cap of ``max_bytes``, as whole events.

    A page over the cap was cut by the hub as text, so REST answered 500 and MCP clients got JSON they
    could not parse — with no cursor to go on. Cut here, the page keeps the events that fit and its cursor
    points after the last of them: the next read continues there and no event is skipped. An event too
    large to fit alone is returned with its payload left out (and its size said), so readers move past it.
    """
    events: list[dict[str, Any]] = list(page["events"])
    budget, used = max_bytes - _ROOM, 0
    kept: list[dict[str, Any]] = []
    for event in events:
        size = len(_ENCODE(event).encode()) + 1
        if used + size > budget:
            if kept:
                return {"events": kept, "cursor": kept[-1]["seq"]}
            event = _without_payload(event, size, max_bytes)
            size = len(_ENCODE(event).encode()) + 1
        kept.append(event)
        used += size
    return {"events": kept, "cursor": page["cursor"]}


def _without_payload(event: Mapping[str, Any], size: int, max_bytes: int) -> dict[str, Any]:
    note = (
        f"the event is {size:,} bytes, over the hub's result cap of {max_bytes:,} bytes "
        "(limits.max_result_bytes): its payload is left out; an operator sees it with "
        f"'toolbridge events show {event.get('id', '')}'"
    )
    return {**event, "payload": None, "payload_omitted": note}
