"""The server application: MCP at ``/mcp``, REST at ``/v1``, one lifespan for everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from toolbridge._trace import continued, incoming
from toolbridge.hub import Hub
from toolbridge.surfaces._head import HeadAsGet
from toolbridge.surfaces._hooks import hooks_endpoint
from toolbridge.surfaces._http_errors import http_problem
from toolbridge.surfaces._limits import BodyLimit
from toolbridge.surfaces._media import JsonMedia
from toolbridge.surfaces._ows import without_ows
from toolbridge.surfaces._request_id import RequestIds
from toolbridge.surfaces.admin import create_admin_app, prefers_html
from toolbridge.surfaces.mcp import McpSurface
from toolbridge.surfaces.rest import create_rest_app
from toolbridge.surfaces.rest._workspace import create_workspace_app

__all__ = ["create_app"]


_INDEX = {
    "service": "toolbridge",
    "mcp": "/mcp",
    "rest": "/v1",
    "openapi": "/v1/openapi.json",
    "docs": "/v1/docs",
    "health": "/healthz",
    "hooks": "/hooks/{source}",
    "admin": "/admin/",
}
"""What ``GET /`` answers: where everything is."""


async def _index(request: Request) -> Response:
    """The index; a browser (asking for HTML, not JSON) is sent to the admin UI."""
    if prefers_html(request.headers.get("accept", "")):
        return RedirectResponse("/admin/", status_code=303)
    return JSONResponse(_INDEX)


async def _to_admin(_request: Request) -> Response:
    return RedirectResponse("/admin/", status_code=303)


def create_app(
    hub: Hub,
    *,
    max_body_bytes: int = 1_048_576,
    allowed_origins: Sequence[str] = (),
    manage_hub: bool = True,
) -> Starlette:
    """Build the ASGI app.

    Its lifespan starts ``hub`` (unless ``manage_hub`` is False) and the MCP surface.
    """
    mcp = McpSurface(hub, allowed_origins=allowed_origins, max_body_bytes=max_body_bytes)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_hub:
            async with hub, mcp:
                yield
        else:
            async with mcp:
                yield

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok" if hub.running else "starting", "tools": len(hub.catalog)})

    mcp_route = Route("/mcp", mcp.asgi_app, methods=["GET", "POST", "DELETE"])
    routes = [
        Route("/", _index),
        Route("/healthz", health),
        mcp_route,
        Route("/hooks/{source}", hooks_endpoint(hub), methods=["POST"]),
        Mount("/mcp", app=mcp.asgi_app),
        Route("/admin", _to_admin),
        Mount("/admin", app=BodyLimit(create_admin_app(hub), max_bytes=max_body_bytes)),
        Mount("/v1/workspaces", app=RequestIds(HeadAsGet(_workspace_media(create_workspace_app(hub))))),
        Mount(  # (the workspaces have their own size limits)
            "/v1",
            app=RequestIds(HeadAsGet(_rest_media(BodyLimit(create_rest_app(hub), max_bytes=max_body_bytes)))),
        ),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_problem(request, exc, routes)

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(_Entry, mcp=mcp_route)],
        exception_handlers={HTTPException: http_error},
    )


def _rest_media(app: ASGIApp) -> ASGIApp:
    """406 and 415 at ``/v1`` (see ``_media``): every route answers JSON but the API's HTML page and the
    OAuth callback's pages; a POST body is JSON, but the tool call also reads JSON sent as a form or as
    plain text (README's ``curl -d``)."""
    return JsonMedia(
        app,
        not_json=r"(GET|HEAD) /(docs|docs/oauth2-redirect|connections/callback)",
        lenient=r"POST /tools/[^/]+/call",
        strict=r"POST /.*",
    )


def _workspace_media(app: ASGIApp) -> ASGIApp:
    """406 and 415 at ``/v1/workspaces`` (see ``_media``): a download answers with the file's own type and
    tus with no body; creating a workspace and importing a URL read JSON as the tool call does (a file's
    PUT and tus's PATCH take bytes of any type)."""
    return JsonMedia(
        app,
        not_json=r"(GET|HEAD) /[^/]+/content|[A-Z]+ /[^/]+/uploads(/[^/]+)?",
        lenient=r"POST /([^/]+/import)?",
    )


def _slashed(scope: Scope) -> Scope:
    """``scope`` for its path with a ``/`` appended."""
    slashed = {**scope, "path": scope["path"] + "/"}
    if "raw_path" in scope:
        slashed["raw_path"] = scope["raw_path"] + b"/"
    return slashed


class _Entry:
    """Every HTTP request's trace context (``traceparent``) current while it is served (but /mcp's, which
    the MCP surface makes current itself), its header values stripped of OWS (:func:`without_ows`), and
    ``/v1/workspaces`` served as ``/v1/workspaces/`` (the mount's root, where its routes list and create);
    and ``POST /mcp``, the
    request every tool call is, handed to its route as Starlette's router would hand it, without the
    router's walk over the routes and the exception middleware's wrapping of ``send`` (about a tenth of
    a no-op call's CPU in-process). Neither does anything for that request: the route is an ASGI app
    that takes POST, and nothing on the MCP path raises ``HTTPException``, the one exception the
    middleware answers. The scope gets the keys the router and the middleware would have set."""

    def __init__(self, app: ASGIApp, *, mcp: Route) -> None:
        self.app = app
        self.mcp = mcp
        self.handlers = (
            (app._exception_handlers, app._status_handlers) if isinstance(app, ExceptionMiddleware) else None
        )
        """What the exception middleware puts in the scope (for function endpoints: none on this route)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        mcp = path == "/mcp" or path.startswith("/mcp/")  # (the MCP surface's gate takes its own)
        with continued(None if mcp else incoming(scope["headers"])):  # a caller's trace goes on here
            await self._serve(without_ows(scope), receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == scope.get("root_path", "") + "/v1/workspaces":  # its mount's root (it was a 404)
            scope = _slashed(scope)
        if scope["path"] != "/mcp" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if self.handlers is not None:
            scope["starlette.exception_handlers"] = self.handlers
        if "router" not in scope:
            scope["router"] = scope["app"].router
        scope["route"] = self.mcp
        scope["endpoint"] = self.mcp.endpoint
        scope["path_params"] = dict(scope.get("path_params", {}))
        await self.mcp.app(scope, receive, send)
