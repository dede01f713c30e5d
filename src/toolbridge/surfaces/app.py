"""The server application: MCP at ``/mcp``, REST at ``/v1``, one lifespan for everything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from toolbridge.hub import Hub
from toolbridge.surfaces._hooks import hooks_endpoint
from toolbridge.surfaces._http_errors import http_problem
from toolbridge.surfaces._limits import BodyLimit
from toolbridge.surfaces._ows import StripOws
from toolbridge.surfaces._request_id import RequestIds
from toolbridge.surfaces.mcp import McpSurface
from toolbridge.surfaces.rest import create_rest_app
from toolbridge.surfaces.rest._workspace import create_workspace_app

__all__ = ["create_app"]


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

    async def index(_request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "service": "toolbridge",
                "mcp": "/mcp",
                "rest": "/v1",
                "openapi": "/v1/openapi.json",
                "docs": "/v1/docs",
                "health": "/healthz",
                "hooks": "/hooks/{source}",
            }
        )

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/mcp", mcp.asgi_app, methods=["GET", "POST", "DELETE"]),
        Route("/hooks/{source}", hooks_endpoint(hub), methods=["POST"]),
        Mount("/mcp", app=mcp.asgi_app),
        Mount("/v1/workspaces", app=RequestIds(create_workspace_app(hub))),  # streams: its own size limits
        Mount("/v1", app=RequestIds(BodyLimit(create_rest_app(hub), max_bytes=max_body_bytes))),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_problem(request, exc, routes)

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(StripOws)],
        exception_handlers={HTTPException: http_error},
    )
