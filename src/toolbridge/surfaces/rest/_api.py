"""The REST surface: ``/v1`` — list tools, call them, read the call log. Every call ends in ``Hub.call``.

Errors are RFC 9457 problem documents (``application/problem+json``); the API's own OpenAPI document is
served at ``/v1/openapi.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from toolbridge import _jsonin as jsonin
from toolbridge._shape import CallResult
from toolbridge._suggest import close_matches, did_you_mean
from toolbridge.audit._metrics import CONTENT_TYPE as METRICS_TYPE
from toolbridge.catalog import Tool
from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    PermissionDenied,
    ToolbridgeError,
    ToolNotFound,
    http_status,
    problem,
)
from toolbridge.hub import Hub
from toolbridge.policy import Principal
from toolbridge.surfaces._http_errors import PROBLEM as _PROBLEM
from toolbridge.surfaces._http_errors import http_problem
from toolbridge.surfaces._request import api_key
from toolbridge.surfaces._tool_search import MAX_QUERY_CHARS, search_document, tool_filter
from toolbridge.surfaces.rest._connections import connections_router
from toolbridge.surfaces.rest._events import events_router
from toolbridge.surfaces.rest._openapi import complete_document
from toolbridge.surfaces.rest._runs import runs_router

__all__ = ["create_rest_app", "problem_response", "tool_document"]

_IDEMPOTENCY_KEY_MAX = 255

_HEADER_PARAMS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]{0,253}[\\x21-\\x7e])?$"},
        "description": "Makes a retried call safe: the same key and arguments return the first outcome",
    },
    {"name": "X-Request-Id", "in": "header", "required": False, "schema": {"type": "string"}},
]

_CALL_BODY = {
    "parameters": _HEADER_PARAMS,
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "arguments": {
                            "type": ["object", "null"],
                            "description": "the tool's arguments; absent or null: none ({}), as over MCP",
                        },
                        "connection": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 128,
                            "description": "which of your connections (account name or id) to call with",
                        },
                    },
                }
            }
        },
    },
}


def problem_response(exc: ToolbridgeError, *, instance: str | None = None) -> JSONResponse:
    # a challenge for the caller's own key only: a reconnect_required (also 401) is about the account
    # behind the tool, and a client answering the challenge with another key would fix nothing
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationError) else {}
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
    if exc.replayed:  # an idempotency key's stored failure, as for a stored success
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        problem(exc, instance=instance), status_code=http_status(exc), media_type=_PROBLEM, headers=headers
    )


def tool_document(tool: Tool) -> dict[str, Any]:
    """``tool`` as the REST API shows it. Its schemas are copied into dicts: a capability's input schema is
    a read-only mapping, which the serializer of FastAPI's answers cannot write (a 500)."""
    a = tool.annotations
    doc: dict[str, Any] = {
        "name": tool.name,
        "connector": tool.connector,
        "description": tool.description,
        "input_schema": dict(tool.input_schema),
        "annotations": {
            "read_only": a.read_only,
            "destructive": a.destructive,
            "idempotent": a.idempotent,
            "open_world": a.open_world,
        },
        "cost": tool.cost,
    }
    if tool.title:
        doc["title"] = tool.title
    if tool.output_schema is not None:
        doc["output_schema"] = dict(tool.output_schema)
    if tool.tags:
        doc["tags"] = list(tool.tags)
    return doc


def _result_document(result: CallResult) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tool": result.tool,
        "request_id": result.request_id,
        "truncated": result.truncated,
        "size": result.size,
        "duration_ms": round(result.duration_ms, 3),
    }
    if result.replayed:
        body["replayed"] = True
    if result.queued:
        body["queued"] = True
    if result.truncated:
        body["text"] = result.text
    else:
        body["result"] = result.value
    return body


async def _principal(request: Request) -> Principal:
    return await _authenticate(request)  # the key's headers are the document's security schemes


async def _authenticate(request: Request) -> Principal:
    hub: Hub = request.app.state.hub
    return await hub.authenticate(api_key(request.headers), request_id=request.headers.get("x-request-id"))


Caller = Annotated[Principal, Depends(_principal)]


_operations = APIRouter()


def _hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


@_operations.get(
    "/health/connectors",
    summary="Breaker, retry and rate-limit state of the connectors the caller can use (all: operators)",
)
async def connector_health(request: Request, caller: Caller) -> dict[str, Any]:
    hub = _hub_of(request)
    usable = {t.connector for t in hub.list_tools(caller)}
    names = [n for n in hub.connector_names() if caller.is_operator or n in usable]
    health = [dataclasses.asdict(h) for h in hub.resilience.health(names)]
    if not caller.is_operator:  # how long, not whose: connection ids are their owners' and the operators'
        for row in health:
            row["ejected"] = [{k: v for k, v in e.items() if k != "connection"} for e in row["ejected"]]
    return {"connectors": [{**row, "upstream": _upstream(hub, row["connector"])} for row in health]}


@_operations.get(
    "/metrics",
    summary="Prometheus metrics of this process: calls by tool and outcome, durations, breakers (operators)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, caller: Caller) -> Response:
    if not caller.is_operator:
        raise PermissionDenied(
            "the metrics cover every connector and agent: only an operator may read them",
            missing_scope="*",
            hint="scrape with a key of an agent granted the scope '*' "
            "(Prometheus: authorization: {credentials: <key>} in the scrape config)",
        )
    hub = _hub_of(request)
    body = hub.audit.metrics.render(hub.resilience.health(hub.connector_names()), tools=len(hub.catalog))
    return Response(body, media_type=METRICS_TYPE)


def _upstream(hub: Hub, name: str) -> str | None:
    """An upstream connector's own state (an MCP server: connected, starting, down and retried)."""
    status = getattr(hub.connector(name), "status", None)
    return status if isinstance(status, str) else None


@_operations.get(
    "/capabilities",
    summary="The router's capabilities the caller may call (operators also see providers and breakers)",
)
async def list_capabilities(request: Request, caller: Caller) -> dict[str, Any]:
    hub = _hub_of(request)
    from toolbridge.router import capability_documents, find_router

    router = find_router(hub)
    if router is None:
        return {"capabilities": []}
    tools = [t.name for t in hub.list_tools(caller) if t.connector == router.name]
    return {"capabilities": capability_documents(hub, router, tools, detail=caller.is_operator)}


@_operations.get("/tools", summary="List the tools this agent may call, or search them with q")
async def list_tools(
    request: Request,
    caller: Caller,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS, description="the task in words")] = None,
    limit: Annotated[int | None, Query(ge=1, le=50, description="how many tools (a search: 10)")] = None,
    connector: Annotated[str | None, Query(description="only this connector's tools")] = None,
    read_only: Annotated[bool | None, Query(description="only read-only tools (true) or others")] = None,
    tags: Annotated[list[str] | None, Query(description="only tools with one of these tags")] = None,
) -> dict[str, Any]:
    _check_listing_parameters(request)
    hub = _hub_of(request)
    if q is None:
        keep = tool_filter(connector, read_only, tags or ())
        listed = [t for t in hub.list_tools(caller) if keep is None or keep(t)]
        return {"tools": [tool_document(t) for t in listed[:limit]]}
    await hub.catalog.prepare_search()  # built off the event loop after a catalog change
    return search_document(
        hub, caller, q, limit=limit or 10, connector=connector, read_only=read_only, tags=tags or ()
    )


@_operations.get("/outbox", summary="The caller's writes queued for a later retry")
async def list_outbox(
    request: Request,
    caller: Caller,
    state: Literal["queued", "parked", "running", "done", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    items = await _hub_of(request).outbox.items(principal=caller.id, state=state, limit=limit)
    return {"items": [i.as_dict() for i in items]}


@_operations.get("/outbox/{item_id}", summary="One queued write: its state, attempts, last error or result")
async def get_outbox(item_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    item = await _hub_of(request).outbox.get(item_id, principal=caller.id)
    if item is None:  # another principal's item looks exactly like a missing one
        raise StarletteHTTPException(404, f"no queued write {item_id!r}")
    return item.as_dict()


@_operations.get("/calls", summary="The caller's recent calls, from the audit log")
async def list_calls(
    request: Request, caller: Caller, limit: Annotated[int, Query(ge=1, le=500)] = 50, tool: str | None = None
) -> dict[str, Any]:
    records = await _hub_of(request).audit.tail(limit, tool=tool, principal=caller.id)  # reads its own writes
    return {"calls": [_call_document(r.as_dict()) for r in records]}


def create_rest_app(hub: Hub) -> FastAPI:
    """The ``/v1`` application (mount it at ``/v1``)."""
    app = FastAPI(
        title="toolbridge",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        description="One catalog of tools for AI agents. Authenticate with `Authorization: Bearer <key>`.",
        dependencies=[Depends(_known_query)],
    )
    app.state.hub = hub

    @app.get("/tools/{name}", summary="Describe one tool")
    async def get_tool(name: str, caller: Caller) -> dict[str, Any]:
        try:
            return tool_document(hub.get_tool(caller, name))
        except ToolNotFound as exc:
            raise hub.with_guesses(caller, exc) from None

    @app.post("/tools/{name}/call", summary="Call a tool", openapi_extra=_CALL_BODY)
    async def call_tool(name: str, request: Request) -> JSONResponse:
        # The hot path: headers are read here rather than through FastAPI dependencies (about a fifth
        # of the endpoint's cost); they are documented in _CALL_BODY.
        caller = await _authenticate(request)
        arguments, connection = _arguments(await request.body())
        result = await hub.call(
            caller,
            name,
            arguments,
            connection=connection,
            idempotency_key=_checked_key(request.headers.get("idempotency-key")),
            request_id=request.headers.get("x-request-id"),
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        if result.queued:
            headers["Location"] = f"/v1/outbox/{result.value['outbox_id']}"
        return JSONResponse(
            _result_document(result), headers=headers, status_code=202 if result.queued else 200
        )

    app.include_router(_operations)
    app.include_router(connections_router)
    app.include_router(events_router)
    app.include_router(runs_router)
    _install_error_handlers(app)
    app.openapi = lambda: complete_document(app)  # type: ignore[method-assign]
    return app


_FREE_QUERY = frozenset({"/tools", "/connections/callback"})
"""Routes not checked by :func:`_known_query`: ``/tools`` checks its own (with aliases such as
``query``); an OAuth provider adds what it likes to the callback (``iss``, ``scope``, ``session_state``)."""


async def _known_query(request: Request) -> None:
    """A query parameter the route does not take is a 400 naming the ones it does: ignored, a misspelt
    filter (``/calls?tools=…``) answered as no filter, and a ``cursor`` where there is no paging answered
    the first page again to an agent that then paged for ever."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute) or route.path in _FREE_QUERY:
        return
    known = [p.alias for p in get_flat_params(route.dependant) if isinstance(p.field_info, params.Query)]
    for name in request.query_params:
        if name in known:
            continue
        takes = f"takes {', '.join(known)}" if known else "takes no query parameters"
        raise BadRequest(
            f"unknown query parameter {name!r}",
            hint="; ".join(
                h
                for h in (
                    did_you_mean(close_matches(name, known)),
                    f"{request.method} /v1{route.path} {takes}",
                )
                if h
            ),
        )


_LISTING_PARAMETERS = ("q", "limit", "connector", "read_only", "tags")
_QUERY_ALIASES = {"query": "q", "search": "q", "text": "q", "top_k": "limit", "k": "limit", "tag": "tags"}


def _check_listing_parameters(request: Request) -> None:
    """``GET /tools`` takes only its own query parameters: ``?query=…`` for ``?q=…`` answered with the
    whole catalog instead of a search, silently."""
    for name in request.query_params:
        if name in _LISTING_PARAMETERS:
            continue
        meant = _QUERY_ALIASES.get(name) or next(iter(close_matches(name, _LISTING_PARAMETERS)), None)
        raise BadRequest(
            f"unknown query parameter {name!r}",
            hint=(f"did you mean {meant!r}? " if meant else "")
            + f"GET /v1/tools takes {', '.join(_LISTING_PARAMETERS)} (q: the task in words, a search)",
        )


def _call_document(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("seq", "ts", "request_id", "tool", "outcome", "error_code", "duration_ms", "args_digest")
    }


def _arguments(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The call's arguments and the connection it names (None: the policy's choice)."""
    if not body.strip():
        return {}, None
    try:
        data = jsonin.loads(body)
    except ValueError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc}",
            hint='send {"arguments": {...}} with Content-Type: application/json',
        ) from None
    if not isinstance(data, dict) or set(data) - set(_BODY_KEYS):
        raise _body_shape_error(data)
    arguments = data.get("arguments", {})
    connection = data.get("connection")
    if connection is not None and (not isinstance(connection, str) or not 0 < len(connection) <= 128):
        raise BadRequest(
            '"connection" must be an account name or connection id',
            hint="list yours with GET /v1/connections",
        )
    if arguments is None:  # null means none, as MCP's tools/call takes "arguments": null
        return {}, connection
    if not isinstance(arguments, dict):
        raise BadRequest('"arguments" must be a JSON object', hint='send {"arguments": {"name": value}}')
    return arguments, connection


_BODY_KEYS = ("arguments", "connection")
_ARGUMENTS_ALIASES = frozenset(
    {"args", "arg", "argument", "params", "parameters", "input", "inputs", "kwargs"}
)


def _body_shape_error(data: object) -> BadRequest:
    """What is wrong with a call's body that is not ``{"arguments": {...}, "connection": ...}``: a key
    misspelt, an idempotency key that belongs in its header, or the tool's own arguments beside (or
    instead of) ``arguments`` — told where they go, with their names."""
    shape = 'the request body must be an object with the keys "arguments" (and optionally "connection")'
    if not isinstance(data, dict):
        return BadRequest(shape, hint='send {"arguments": {"name": value}}')
    stray = [str(key) for key in data if key not in _BODY_KEYS]
    if any("idempotency" in key.lower() for key in stray):
        return BadRequest(
            shape, hint="send the idempotency key in the Idempotency-Key header, not in the body"
        )
    for key in stray:
        bare = "".join(c for c in key.lower() if c.isalpha())
        meant = (
            "arguments"
            if bare in _ARGUMENTS_ALIASES
            else next(iter(close_matches(key, _BODY_KEYS, cutoff=0.8)), None)
        )
        if meant is not None and meant not in data:
            return BadRequest(
                f"the request body has {key!r}, which is not read",
                hint=f'did you mean {meant!r}? send {{"arguments": {{"name": value}}}}',
            )
    fields = ", ".join(f"{json.dumps(key)}: …" for key in stray)
    listed = ", ".join(repr(key) for key in stray)
    return BadRequest(
        f'the request body has {listed} beside "arguments": the tool\'s arguments go inside "arguments"',
        hint=f'send {{"arguments": {{{fields}}}}}',
    )


_META_ON_REST = (
    "search_tools, describe_tool and call_tool are MCP's search mode; over REST, GET /v1/tools?q=<the task "
    "in words> searches, GET /v1/tools/{name} describes a tool and POST /v1/tools/{name}/call calls it"
)


def _meta_tool(name: str | None) -> bool:
    """Whether ``name`` is one of MCP search mode's meta-tools (``toolbridge.search_tools`` …)."""
    return name is not None and name.rpartition(".")[2] in ("search_tools", "describe_tool", "call_tool")


def _checked_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key or len(key) > _IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise BadRequest(
            "the Idempotency-Key header must be 1-255 printable ASCII characters",
            hint="use a UUID or another unique token per logical operation",
        )
    return key


def _install_error_handlers(app: FastAPI) -> None:
    async def toolbridge_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ToolbridgeError)
        if isinstance(exc, ToolNotFound) and not exc.suggestions and _meta_tool(exc.tool):
            exc.hint = _META_ON_REST  # an agent that learned them over MCP, asking REST
        return problem_response(exc, instance=request.url.path)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        kind = request.headers.get("content-type") or ""
        hint = "see /v1/openapi.json for the request format"
        if any(e["loc"][:1] == ("body",) for e in exc.errors()) and "json" not in kind.lower():
            said = kind or "none"
            hint = f"send the body as JSON with 'Content-Type: application/json' (this one said {said})"
        summary = "; ".join(f"{d['field']}: {d['error']}" for d in details)
        bad = BadRequest(f"the request is not valid: {summary}", hint=hint)
        return problem_response(bad, instance=request.url.path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return http_problem(request, exc, request.app.router.routes)

    app.add_exception_handler(ToolbridgeError, toolbridge_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
