"""The catalog: list and search the tools (the search of ``GET /v1/tools?q=``), a tool's page, and its
try-it form, which calls the tool through ``Hub.call`` as the signed-in operator (one audit row, as any
other surface's call)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge import _jsonin as jsonin
from toolbridge.catalog import Tool, summary_of
from toolbridge.errors import BadRequest, ToolbridgeError, ToolNotFound, problem
from toolbridge.surfaces._tool_search import MAX_QUERY_CHARS, search_document, tool_filter
from toolbridge.surfaces.admin._web import Operator, admin_of, checked_form, operator, render

__all__ = ["routes"]

_SHOWN = 200
"""Tools listed at most on one page without a search (narrow it with a search or a connector)."""


def _entry(tool: Tool) -> dict[str, Any]:
    return {"name": tool.name, "summary": summary_of(tool), "read_only": tool.annotations.read_only}


async def tools_page(request: Request) -> Response:
    who = await operator(request)
    hub = admin_of(request).hub
    q = request.query_params.get("q", "").strip()[:MAX_QUERY_CHARS]
    connector = request.query_params.get("connector", "").strip() or None
    context: dict[str, Any] = {"q": q, "connector": connector or "", "hint": "", "error": "", "more": 0}
    try:
        if q:
            await hub.catalog.prepare_search()  # built off the event loop after a catalog change
            found = search_document(hub, who.principal, q, limit=50, connector=connector)
            context["tools"], context["hint"] = found["tools"], found.get("hint", "")
        else:
            keep = tool_filter(connector, None)
            listed = [t for t in hub.list_tools(who.principal) if keep is None or keep(t)]
            context["tools"] = [_entry(t) for t in listed[:_SHOWN]]
            context["more"] = max(0, len(listed) - _SHOWN)
    except ToolbridgeError as exc:
        context["tools"], context["error"] = [], _said(exc)
    connectors = sorted({t.connector for t in hub.list_tools(who.principal)})
    return render(request, "tools.html", {**context, "connectors": connectors}, who=who)


def _said(exc: ToolbridgeError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def _tool(request: Request, who: Operator) -> Tool:
    hub = admin_of(request).hub
    try:
        return hub.get_tool(who.principal, request.path_params["name"])
    except ToolNotFound as exc:
        raise hub.with_guesses(who.principal, exc) from None


def _no_tool(request: Request, exc: ToolNotFound, who: Operator) -> Response:
    return render(
        request, "error.html", {"title": "No such tool", "message": _said(exc)}, status=404, who=who
    )


async def tool_page(request: Request) -> Response:
    who = await operator(request)
    try:
        tool = _tool(request, who)
    except ToolNotFound as exc:
        return _no_tool(request, exc, who)
    form = {"arguments": "{}", "connection": "", "idempotency_key": ""}
    return render(request, "tool.html", _tool_context(tool, form), who=who)


def _tool_context(tool: Tool, form: dict[str, str], **outcome: Any) -> dict[str, Any]:
    a = tool.annotations
    return {
        "tool": tool,
        "schema": json.dumps(dict(tool.input_schema), indent=2, ensure_ascii=False, default=str),
        "output_schema": (
            json.dumps(dict(tool.output_schema), indent=2, ensure_ascii=False, default=str)
            if tool.output_schema is not None
            else ""
        ),
        "annotations": {
            "read only": a.read_only,
            "destructive": a.destructive,
            "idempotent": a.idempotent,
            "open world": a.open_world,
        },
        "form": form,
        "result": outcome.get("result", ""),
        "failure": outcome.get("failure", ""),
        "request_id": outcome.get("request_id", ""),
    }


async def try_tool(request: Request) -> Response:
    """The try-it form: the arguments as JSON, optionally a connection and an idempotency key."""
    who = await operator(request)
    data = await checked_form(request, who.session)
    try:
        tool = _tool(request, who)
    except ToolNotFound as exc:
        return _no_tool(request, exc, who)
    form = {k: str(data.get(k) or "") for k in ("arguments", "connection", "idempotency_key")}
    request_id = f"admin-{secrets.token_hex(8)}"
    try:
        arguments = _arguments(form["arguments"])
        result = await admin_of(request).hub.call(
            who.principal,
            tool.name,
            arguments,
            connection=form["connection"].strip() or None,
            idempotency_key=_key(form["idempotency_key"]),
            request_id=request_id,
        )
    except ToolbridgeError as exc:
        failure = _pretty(problem(exc, instance=f"/admin/tools/{tool.name}"))
        context = _tool_context(tool, form, failure=failure, request_id=request_id)
        return render(request, "tool.html", context, status=200, who=who)
    shown = {"result": result.value} if not result.truncated else {"text": result.text, "truncated": True}
    if result.replayed:
        shown["replayed"] = True
    if result.queued:
        shown["queued"] = True
    context = _tool_context(tool, form, result=_pretty(shown), request_id=result.request_id)
    return render(request, "tool.html", context, who=who)


def _arguments(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = jsonin.loads(text.encode())
    except ValueError as exc:
        raise BadRequest(
            f"the arguments are not valid JSON: {exc}", hint='write an object: {"name": value}'
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("the arguments must be a JSON object", hint='write an object: {"name": value}')
    return value


def _key(text: str) -> str | None:
    key = text.strip()
    if not key:
        return None
    if len(key) > 255 or not key.isprintable() or not key.isascii():
        raise BadRequest(
            "the idempotency key must be 1-255 printable ASCII characters",
            hint="use a UUID or another unique token per logical operation",
        )
    return key


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


routes = [
    Route("/tools", tools_page),
    Route("/tools/{name}", tool_page, methods=["GET"]),
    Route("/tools/{name}", try_tool, methods=["POST"]),
]
