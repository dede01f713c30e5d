"""Step 4 of the call path: a connector's ``invoke`` inside the resilience layer, under the call deadline.

The deadline is a hard cap over every attempt and wait: a call still running when it passes is cancelled
and answered ``upstream_timeout`` — or ``outcome_unknown`` for a write that may have been applied, whose
agent must check before calling again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from toolbridge.connectors import Connector, Invocation, key_carrier
from toolbridge.errors import OutcomeUnknown, UpstreamTimeout
from toolbridge.resilience import Attempt, Resilience
from toolbridge.resilience._executor import CHECK_FIRST

if TYPE_CHECKING:
    from toolbridge.catalog import Tool

__all__ = ["invoke"]


async def invoke(
    resilience: Resilience,
    connector: Connector,
    tool: Tool,
    arguments: Mapping[str, Any],
    invocation: Invocation,
    *,
    ends: float,
    seconds: float,
) -> Any:
    """``connector``'s invoke of ``tool`` inside ``resilience``, cancelled at ``ends`` (the call deadline,
    ``seconds`` after the call started, on the clock of :func:`toolbridge._clock.now`)."""
    a = tool.annotations
    attempt = Attempt(
        connector=tool.connector,
        tool=tool.name,
        deadline=invocation.deadline,
        idempotent=a.idempotent
        or a.read_only
        or (invocation.idempotency_key is not None and key_carrier(connector, tool) is not None),
        refresh=invocation.credentials.refresh if invocation.credentials is not None else None,
        connection=getattr(invocation.credentials, "ejection_key", None),
    )
    with anyio.CancelScope(deadline=ends) as scope:
        return await resilience.run(attempt, lambda: connector.invoke(tool, arguments, invocation))
    assert scope.cancelled_caught
    late = f"{tool.name!r} did not finish within the call deadline of {seconds:g} s"
    if not attempt.idempotent:  # a write may have been applied: "try again" could apply it twice
        unknown = f"{late}; it may or may not have taken effect"
        raise OutcomeUnknown(unknown, tool=tool.name, hint=CHECK_FIRST)
    keyed = not (tool.annotations.read_only or tool.annotations.idempotent)  # safe by its key alone
    again = " with the same idempotency key (the upstream applies it once)" if keyed else ""
    raise UpstreamTimeout(
        late, tool=tool.name, hint=f"try again later{again}, or ask for less work in one call"
    )
