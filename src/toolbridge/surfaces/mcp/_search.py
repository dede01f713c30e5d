"""Tool search mode: three meta-tools instead of every schema, for agents with large catalogs.

An agent whose ``tool_mode`` is ``search`` sees ``toolbridge.search_tools`` (find tools by words),
``toolbridge.describe_tool`` (one tool's full definition) and ``toolbridge.call_tool`` (call one). The
catalog is still filtered by the agent's scopes, and ``call_tool`` goes through ``Hub.call`` like any
call: authorized, validated, audited as the tool it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from toolbridge.errors import BadRequest
from toolbridge.surfaces.mcp._wire import REQUEST_ID_META_KEY, tool_to_wire

if TYPE_CHECKING:
    from toolbridge import Hub, Principal, Tool

__all__ = [
    "CALL",
    "DESCRIBE",
    "META_SCHEMAS",
    "META_TOOLS",
    "SEARCH",
    "in_search_mode",
    "search_answer",
    "text_result",
]

SEARCH = "toolbridge.search_tools"
DESCRIBE = "toolbridge.describe_tool"
CALL = "toolbridge.call_tool"
_WORD = re.compile(r"[a-z0-9]+")
_HINTS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}

META_TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH,
        "description": "Find tools by what they do. Returns matching tool names with a one-line summary; "
        "call toolbridge.describe_tool for a tool's arguments, then toolbridge.call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "words describing the task, e.g. 'create issue'"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "annotations": _HINTS,
    },
    {
        "name": DESCRIBE,
        "description": "The full definition of one tool: description, input schema, annotations.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "a tool name from search_tools"}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "annotations": _HINTS,
    },
    {
        "name": CALL,
        "description": "Call a tool by name with its arguments (see describe_tool for the arguments).",
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


def in_search_mode(hub: Hub, principal: Principal) -> bool:
    return principal.kind == "agent" and hub.tool_modes.get(principal.name) == "search"


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _score(tool: Tool, words: set[str]) -> float:
    name = _words(tool.name.replace(".", " ").replace("_", " ").replace("-", " "))
    text = _words(tool.description)
    return sum(3.0 if w in name else 1.0 if w in text else 0.0 for w in words)


def search_answer(hub: Hub, principal: Principal, name: str, arguments: Mapping[str, Any]) -> Any:
    """The value of ``search_tools`` or ``describe_tool`` (``call_tool`` is the bridge's own call)."""
    if name == SEARCH:
        query, limit = arguments.get("query"), arguments.get("limit", 10)
        if not isinstance(query, str) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise BadRequest("search_tools takes a 'query' string and a 'limit' of 1 to 50", tool=SEARCH)
        words = _words(query)
        ranked = sorted(
            ((s, t) for t in hub.list_tools(principal) if (s := _score(t, words)) > 0),
            key=lambda pair: (-pair[0], pair[1].name),
        )
        return {
            "tools": [
                {
                    "name": t.name,
                    "summary": (t.description.splitlines() or [""])[0][:200],
                    "read_only": t.annotations.read_only,
                }
                for _, t in ranked[:limit]
            ]
        }
    target = arguments.get("name")
    if not isinstance(target, str):
        raise BadRequest("describe_tool takes the 'name' of a tool", tool=DESCRIBE)
    return tool_to_wire(hub.get_tool(principal, target))


def text_result(value: Any, request_id: str) -> dict[str, Any]:
    """A meta-tool's answer: its JSON as text and as structured content."""
    return {
        "content": [{"type": "text", "text": json.dumps(value, ensure_ascii=False)}],
        "structuredContent": value,
        "isError": False,
        "resultType": "complete",
        "_meta": {REQUEST_ID_META_KEY: request_id},
    }
