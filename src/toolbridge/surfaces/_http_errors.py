"""Starlette's own answers — no route for the path (404), not this method (405) — as RFC 9457 problem
documents, the way every other error of the server is answered, with the whole ``Allow`` header.

Starlette names in ``Allow`` only the first route that matches the path, so a path served by several
routes (``GET`` and ``DELETE`` apart, as FastAPI and the workspace routes declare them) would answer a 405
with half its methods; :func:`allowed_methods` collects them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match

__all__ = ["allowed_methods", "http_problem"]

PROBLEM = "application/problem+json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], scope: Mapping[str, Any]) -> str:
    """The ``Allow`` header for the request's path: every method some route serves it with (each asked
    through the routes' own matching, so routers FastAPI includes lazily are asked too)."""
    allowed = []
    for method in _METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return ", ".join(allowed)


def http_problem(request: Request, exc: HTTPException, routes: Iterable[BaseRoute]) -> JSONResponse:
    """``exc`` (raised by Starlette's routing or an endpoint) as a problem document."""
    headers = dict(exc.headers or {})
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": str(exc.detail),
        "status": exc.status_code,
        "detail": f"{request.method} {request.url.path}: {exc.detail}",
    }
    if exc.status_code == 404:
        body["hint"] = "see /v1/openapi.json for the REST endpoints; MCP is at /mcp"
    elif exc.status_code == 405:
        headers["Allow"] = allowed_methods(routes, request.scope)
        body["hint"] = f"this path takes {headers['Allow']}"
    return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM, headers=headers)
