"""The call path for agent actions that are not tool calls: a download, an upload, a federated read.

``Hub.call`` runs a tool; some actions stream bytes or relay an upstream's answer as it came, so they
cannot be tool calls, but they must not bypass what a tool call gets. :func:`perform` gives them the
same steps around the work the caller does itself: authorize (as the tool whose scope governs the
action), the agent's inbound rate limit, and exactly one audit row with the fields every call has,
whatever the outcome (the arguments are digested, never stored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from toolbridge._clock import now
from toolbridge.audit import args_digest, audit_entry
from toolbridge.errors import UpstreamTimeout
from toolbridge.resilience import Attempt

if TYPE_CHECKING:
    from toolbridge.catalog import Tool
    from toolbridge.hub import Hub
    from toolbridge.policy import Principal

__all__ = ["perform", "upstream_read"]

T = TypeVar("T")


@asynccontextmanager
async def perform(
    hub: Hub,
    principal: Principal,
    action: str,
    arguments: Mapping[str, Any],
    *,
    scope: str | None,
    request_id: str,
) -> AsyncIterator[Tool | None]:
    """Run the block as ``principal``'s ``action``; yields the tool ``scope`` names (None: no scope
    check beyond authentication, as for listing one's own workspaces)."""
    started = now()
    error: BaseException | None = None
    try:
        tool = hub._authorize(principal, scope) if scope is not None else None
        await hub._check_inbound_rate(principal, action)
        yield tool
    except BaseException as exc:  # any outcome, a cancellation too, goes into the audit row; re-raised
        error = exc
        raise
    finally:
        entry = audit_entry(
            request_id,
            principal.id,
            action,
            args_digest(arguments),
            duration_ms=(now() - started) * 1000.0,
            error=error,
        )
        with anyio.CancelScope(shield=True):
            await hub.audit.record(entry)


async def upstream_read(hub: Hub, connector: str, action: str, work: Callable[[float], Awaitable[T]]) -> T:
    """A read from ``connector``'s upstream (``work(deadline)``) under the hub's call deadline, through
    the connector's resilience: its breaker, bulkhead and limits, and retries (a read is safe to repeat)."""
    timeout = hub.limits.call_timeout
    deadline = anyio.current_time() + timeout
    attempt = Attempt(connector, action, idempotent=True, deadline=hub.resilience.clock() + timeout)
    with anyio.move_on_after(timeout) as scope:
        return await hub.resilience.run(attempt, lambda: work(deadline))
    assert scope.cancelled_caught
    raise UpstreamTimeout(
        f"the upstream of {connector!r} did not answer {action!r} within {timeout:g} s",
        hint="try again later",
    )
