"""Connections: the list (as ``GET /v1/connections`` answers an operator: never a secret) and the OAuth
"Connect" button, which starts the connect flow of ``POST /v1/connections/connect`` and sends the browser
to the provider; the provider sends it back to ``/v1/connections/callback``, which completes the flow."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.errors import BadRequest
from toolbridge.surfaces.admin._web import admin_of, checked_form, operator, render
from toolbridge.surfaces.rest._connections import StartConnect, list_connections, start_connect

__all__ = ["routes"]


async def connections_page(request: Request) -> Response:
    who = await operator(request)
    listed: dict[str, Any] = await list_connections(request, who.principal)
    manager = admin_of(request).hub.credentials
    oauth = sorted(name for name, b in (manager.bindings.items() if manager else ()) if b.scheme == "oauth2")
    context = {"connections": listed["connections"], "oauth": oauth}
    return render(request, "connections.html", context, who=who)


async def connect(request: Request) -> Response:
    """Start the flow as the operator (audited like the REST route) and send the browser to the provider.

    A page that refreshes to the provider's URL rather than a 303: the Content-Security-Policy's
    ``form-action 'self'`` also covers where a form's answer redirects to, and the provider is elsewhere."""
    who = await operator(request)
    form = await checked_form(request, who.session)
    try:
        body = StartConnect(
            connector=str(form.get("connector") or ""),
            account=str(form.get("account") or "").strip() or "default",
            shared=form.get("shared") == "on" or None,
        )
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(
            f"the connect form is not valid: {fields}", hint="an account is 1-128 characters"
        ) from None
    started = await start_connect(body, request, who.principal)
    url = str(started["authorization_url"])
    if not url.startswith(("https://", "http://")):
        raise BadRequest(f"the provider's authorization URL is not http(s): {url[:100]!r}")
    context = {"url": url, "connector": body.connector, "account": body.account}
    return render(request, "connect.html", context, who=who)


routes = [
    Route("/connections", connections_page),
    Route("/connections/connect", connect, methods=["POST"]),
]
