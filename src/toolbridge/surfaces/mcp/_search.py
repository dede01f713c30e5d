"""Tool search mode: three meta-tools instead of every schema, for agents with large catalogs.

An agent whose ``tool_mode`` is ``search`` sees ``toolbridge.search_tools`` (find tools by words),
``toolbridge.describe_tool`` (one tool's full definition) and ``toolbridge.call_tool`` (call one). The
catalog is still filtered by the agent's scopes, and ``call_tool`` goes through ``Hub.call`` like any
call: authorized, validated, audited as the tool it names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from toolbridge.catalog import Catalog, Tool
from toolbridge.catalog._compact import argument_schema, compact_schema
from toolbridge.errors import InvalidArguments, ToolbridgeError, ToolNotFound
from toolbridge.surfaces._tool_search import MAX_QUERY_CHARS, search_document
from toolbridge.surfaces.mcp._wire import (
    REQUEST_ID_META_KEY,
    error_result,
    is_tool_error,
    protocol_error,
    tool_to_wire,
)

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = [
    "CALL",
    "DESCRIBE",
    "META_SCHEMAS",
    "META_TOOLS",
    "SEARCH",
    "check_meta_arguments",
    "in_search_mode",
    "meta_step",
    "not_found",
    "search_answer",
    "text_result",
]

SEARCH = "toolbridge.search_tools"
DESCRIBE = "toolbridge.describe_tool"
CALL = "toolbridge.call_tool"
DESCRIBE_BUDGET = 8_000
"""Bytes a compact input schema aims at (the output schema gets a quarter of it)."""
DESCRIPTION_BUDGET = 2_000
"""Characters of a tool's description ``describe_tool`` shows unless asked for ``full``."""
_HINTS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}
_NEXT = f"{DESCRIBE} {{name}} shows a tool's arguments; {CALL} {{name, arguments}} calls it"
_CALL_SHAPE = '{"name": "<tool name>", "arguments": {"<argument>": <value>, ...}}'
_ALIASES = {  # keys agents send instead of the meta-tools' own
    "tool": "name",
    "tool_name": "name",
    "toolName": "name",
    "args": "arguments",
    "params": "arguments",
    "parameters": "arguments",
    "input": "arguments",
    "q": "query",
    "text": "query",
    "search": "query",
    "keywords": "query",
    "max_results": "limit",
    "top_k": "limit",
    "k": "limit",
}

META_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH,
        "description": "Find tools by what they do, in plain words ('post a message to a channel'). Returns "
        "the best matching tool names with a one-line summary and a score, best first; says so when nothing "
        "matches well. Then call toolbridge.describe_tool for a tool's arguments, and toolbridge.call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "the task in words, e.g. 'create an incident'",
                    "maxLength": MAX_QUERY_CHARS,
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                "connector": {"type": "string", "description": "only tools of this connector (service)"},
                "read_only": {"type": "boolean", "description": "only tools that change nothing (true)"},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "only tools with one of these tags (an API document's groups)",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "annotations": _HINTS,
    },
    {
        "name": DESCRIBE,
        "description": "One tool's definition: description, input schema, annotations. Large schemas come "
        "compact (repeated parts under $defs, long texts cut, big parts as stubs naming their path); ask "
        "for one part's schema with 'property' or for everything with 'full'.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "a tool name from search_tools"},
                "property": {
                    "type": "string",
                    "description": "one argument's schema, or a part of it by a dotted path, e.g. "
                    "'customer.address', 'input.items' (a list's items), 'input.1' (a union's 2nd branch)",
                },
                "full": {
                    "type": "boolean",
                    "description": "the whole definition, however large",
                    "default": False,
                },
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        "annotations": _HINTS,
    },
    {
        "name": CALL,
        "description": "Call a tool by name with its arguments (see describe_tool for the arguments): "
        + _CALL_SHAPE,
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "the tool to call"},
                "arguments": {"type": "object", "description": "the tool's arguments", "default": {}},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        "annotations": {"readOnlyHint": False, "destructiveHint": True, "openWorldHint": True},
    },
]
META_SCHEMAS: dict[str, Mapping[str, Any]] = {tool["name"]: tool["inputSchema"] for tool in META_TOOLS}
_CHECKS = Catalog()
for _meta in META_TOOLS:
    _CHECKS.add(Tool(_meta["name"], "toolbridge", _meta["description"], _meta["inputSchema"]))


def in_search_mode(hub: Hub, principal: Principal) -> bool:
    return principal.kind == "agent" and hub.tool_modes.get(principal.name) == "search"


def meta_step(
    hub: Hub, principal: Principal, request_id: str, params: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, Mapping[str, Any]]:
    """A meta-tool call: ``(answer, params)`` with the answer of search/describe or of a misuse, else
    ``(None, the inner call's params)`` for ``call_tool`` (its ``_meta`` idempotency key goes along).

    Mistakes are answered here, as errors of the meta-tool the agent called, with the right shape.
    """
    name, arguments = params["name"], params.get("arguments") or {}
    try:
        check_meta_arguments(name, arguments)
        if name != CALL:
            return text_result(search_answer(hub, principal, name, arguments), request_id), params
    except ToolNotFound as exc:
        return error_result(not_found(hub, principal, exc, searching=True), request_id), params
    except ToolbridgeError as exc:
        if is_tool_error(exc):
            return error_result(exc, request_id), params
        raise protocol_error(exc) from exc
    inner = {"name": arguments["name"], "arguments": arguments.get("arguments") or {}}
    if params.get("_meta") is not None:
        inner["_meta"] = params["_meta"]  # the idempotency key applies to the inner call
    return None, inner


def not_found(hub: Hub, principal: Principal, exc: ToolNotFound, *, searching: bool = False) -> ToolNotFound:
    """``exc`` with the search index's good matches for the name when none is close in spelling for a
    "did you mean"; for an agent in search mode, a meta-tool named without its prefix (``search_tools``),
    else pointing at ``search_tools``."""
    if searching and exc.tool and not exc.suggestions:
        bare = exc.tool.rpartition("__")[2].rpartition(".")[2]  # 'search_tools', 'mcp__tb__call_tool'
        meant = [meta for meta in (SEARCH, DESCRIBE, CALL) if meta.rpartition(".")[2] == bare]
        if meant:  # the index guessed 'notes.add' for 'search_tools'
            return ToolNotFound(exc.tool, suggestions=meant)
    exc = hub.with_guesses(principal, exc)
    if exc.suggestions or not exc.tool:
        return exc
    if searching:
        exc.hint = f"find tools with {SEARCH} {{query}}"
    return exc


def check_meta_arguments(name: str, arguments: Mapping[str, Any]) -> None:
    """Refuse meta-tool arguments its schema forbids, naming the fix (and ``call_tool``'s right shape)."""
    schema = META_SCHEMAS[name]
    extra = [k for k in arguments if k not in schema["properties"]]
    shape = f"call it as {_CALL_SHAPE}" if name == CALL else None
    renamed = {k: _ALIASES[k] for k in extra if _ALIASES.get(k) in schema["properties"]}
    if renamed:
        fields = "; ".join(f"unknown field {k!r} (did you mean {v!r}?)" for k, v in renamed.items())
        raise _misuse(name, f"{name} got {fields}", extra, shape)
    if extra and name == CALL:
        where = "the tool's own arguments go under 'arguments'"
        raise _misuse(
            name, f"{name} got {', '.join(map(repr, extra))} at the top level: {where}", extra, shape
        )
    try:
        _CHECKS.validate(_CHECKS.get(name), arguments, size=0, max_bytes=1)
    except InvalidArguments as exc:
        exc.hint = shape or exc.hint
        raise


def _misuse(name: str, message: str, fields: list[str], hint: str | None) -> InvalidArguments:
    errors = [{"field": k, "error": f"unknown field {k!r}"} for k in fields]
    allowed = ", ".join(META_SCHEMAS[name]["properties"])
    return InvalidArguments(message, errors=errors, tool=name, hint=hint or f"{name} takes: {allowed}")


def search_answer(hub: Hub, principal: Principal, name: str, arguments: Mapping[str, Any]) -> Any:
    """The value of ``search_tools`` or ``describe_tool`` (arguments already checked)."""
    if name == SEARCH:
        return _search(hub, principal, arguments)
    tool = hub.get_tool(principal, arguments["name"])
    return describe_document(tool, full=arguments.get("full", False), path=arguments.get("property"))


def describe_document(tool: Tool, *, full: bool = False, path: str | None = None) -> dict[str, Any]:
    """The MCP definition of ``tool``: whole with ``full``, one argument's schema with ``path``
    (``input.items``), else compact when large (then ``compact`` says what was left out and how to ask)."""
    wire = tool_to_wire(tool)
    if full:
        return wire
    if path is not None:
        return _argument(tool, path)
    wire["inputSchema"], cut_in = compact_schema(tool.input_schema, budget=DESCRIBE_BUDGET)
    cut_out = len(tool.description) > DESCRIPTION_BUDGET
    if cut_out:
        wire["description"] = tool.description[: DESCRIPTION_BUDGET - 1].rstrip() + "…"
    if tool.output_schema is not None:
        wire["outputSchema"], cut = compact_schema(
            tool.output_schema, budget=DESCRIBE_BUDGET // 4, drill=False
        )
        cut_out = cut_out or cut
    if cut_in or cut_out:
        wire["compact"] = (
            "shortened to fit: repeated parts under $defs, long descriptions and enums cut, big parts as "
            "stubs; ask for one part with the property='…' its stub names, or for everything with full=true"
        )
    return wire


def _argument(tool: Tool, path: str) -> dict[str, Any]:
    schema = argument_schema(tool.input_schema, path)
    if schema is None:
        known = ", ".join(tool.input_schema.get("properties") or {})
        raise InvalidArguments(
            f"{tool.name!r} has no argument {path!r}",
            errors=[{"field": "property", "error": f"no argument {path!r}"}],
            tool=tool.name,
            hint=f"its top-level arguments: {known}; name nested ones with dots ('customer.address'), "
            "a list's items with 'items' ('input.items'), a union's branch by its number ('input.1')",
        )
    compact, cut = compact_schema(schema, budget=DESCRIBE_BUDGET, path=path)
    return {"name": tool.name, "property": path, "schema": compact, **({"compact": True} if cut else {})}


def _search(hub: Hub, principal: Principal, arguments: Mapping[str, Any]) -> dict[str, Any]:
    answer = search_document(
        hub,
        principal,
        arguments["query"],
        limit=arguments.get("limit", 10),
        connector=arguments.get("connector"),
        read_only=arguments.get("read_only"),
        tags=arguments.get("tags", ()),
    )
    if "good_match" not in answer:
        answer["next"] = _NEXT
    return answer


def text_result(value: Any, request_id: str) -> dict[str, Any]:
    """A meta-tool's answer: its JSON as text and as structured content."""
    return {
        "content": [{"type": "text", "text": json.dumps(value, ensure_ascii=False)}],
        "structuredContent": value,
        "isError": False,
        "resultType": "complete",
        "_meta": {REQUEST_ID_META_KEY: request_id},
    }
