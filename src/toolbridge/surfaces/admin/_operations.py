"""What the operator watches: the call log (the audit rows, newest first, paged by cursor) and the
breakers, retry budgets and rate-limit holds of the connectors (what ``GET /v1/health/connectors``
answers an operator)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.surfaces.admin._web import admin_of, operator, render

__all__ = ["routes"]

PAGE = 50
"""Audit rows per page of the call log."""
OUTCOMES = ("ok", "error", "denied")
_CURSOR = re.compile(r"[0-9]{1,18}")
"""A cursor is an audit row's ``seq``: ASCII digits (``str.isdigit`` takes '²', which ``int`` refuses)."""


async def calls_page(request: Request) -> Response:
    """Every principal's calls (an operator's view), newest first; ``before`` is the cursor of the next
    page: the ``seq`` of the last row shown."""
    who = await operator(request)
    tool = request.query_params.get("tool", "").strip()
    outcome = request.query_params.get("outcome", "")
    outcome = outcome if outcome in OUTCOMES else ""
    before_text = request.query_params.get("before", "")
    before = int(before_text) if _CURSOR.fullmatch(before_text) else None
    records = await admin_of(request).hub.audit.tail(
        PAGE, tool=tool or None, outcome=outcome or None, before=before
    )
    rows = [r.as_dict() for r in reversed(records)]
    context: dict[str, Any] = {
        "rows": rows,
        "tool": tool,
        "outcome": outcome,
        "outcomes": OUTCOMES,
        "next": rows[-1]["seq"] if len(rows) == PAGE and rows[-1]["seq"] > 1 else None,
    }
    return render(request, "calls.html", context, who=who)


async def health_page(request: Request) -> Response:
    who = await operator(request)
    hub = admin_of(request).hub
    connectors = []
    for health in hub.resilience.health(hub.connector_names()):
        status = getattr(hub.connector(health.connector), "status", None)
        connectors.append(
            {**dataclasses.asdict(health), "upstream": status if isinstance(status, str) else ""}
        )
    return render(request, "health.html", {"connectors": connectors}, who=who)


routes = [Route("/calls", calls_page), Route("/health", health_page)]
