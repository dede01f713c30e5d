"""``events.*`` tools: agents without notifications read their subscriptions with a cursor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from toolbridge._jsonin import MAX_STORED_INT
from toolbridge.connectors import Invocation
from toolbridge.resilience import BreakerPolicy, ResiliencePolicy, RetryPolicy

if TYPE_CHECKING:
    from toolbridge.events._service import EventService
    from toolbridge.hub import Hub

__all__ = ["add_event_tools"]

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
        return await service.poll(invocation.principal, subscription, cursor, limit=_limit(limit))

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
        return await service.poll(
            invocation.principal, subscription, cursor, limit=_limit(limit), wait=wait_for
        )


def _limit(limit: int) -> int:
    return min(max(limit, 1), 500)
