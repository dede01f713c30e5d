"""The admin UI at ``/admin``: server-rendered pages for operators (see docs/admin-ui.md).

Signed in with the API key of an operator (an agent granted ``*``); every page reads through the hub as
the REST API does, and the try-it form calls tools through ``Hub.call``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from toolbridge.errors import ToolbridgeError, http_status
from toolbridge.hub import Hub
from toolbridge.surfaces.admin import _auth, _catalog, _connections, _events, _operations, _workspace
from toolbridge.surfaces.admin._sessions import Sessions
from toolbridge.surfaces.admin._web import (
    Admin,
    Forbidden,
    SecurityHeaders,
    SignInNeeded,
    render,
    see_other,
    templates,
)

__all__ = ["create_admin_app", "prefers_html"]


def create_admin_app(hub: Hub, *, sessions: Sessions | None = None) -> ASGIApp:
    """The admin UI (mount it at ``/admin``)."""
    app = Starlette(
        routes=[
            *_auth.routes,
            *_catalog.routes,
            *_operations.routes,
            *_connections.routes,
            *_events.routes,
            *_workspace.routes,
            Mount("/static", app=StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
        ],
        exception_handlers={
            SignInNeeded: _to_sign_in,
            Forbidden: _forbidden,
            ToolbridgeError: _failed,
            HTTPException: _http_error,
        },
    )
    app.state.admin = Admin(hub, sessions or Sessions(), templates())
    app.state.hub = hub  # (the REST routers' functions read it)
    return SecurityHeaders(app)


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header is a browser's asking for a page: it names HTML and no JSON."""
    accept = accept.lower()
    return "text/html" in accept and "json" not in accept


async def _to_sign_in(_request: Request, _exc: Exception) -> Response:
    return see_other("/admin/login")


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    return render(request, "error.html", {"title": "Refused", "message": exc.message}, status=403)


async def _failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ToolbridgeError)
    message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
    return render(request, "error.html", {"title": exc.title, "message": message}, status=http_status(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(
        request, "error.html", {"title": str(exc.detail), "message": str(exc.detail)}, status=exc.status_code
    )
