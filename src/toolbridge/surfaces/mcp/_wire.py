"""Hub values as MCP wire data: tools, call results and errors, as plain JSON-ready dicts.

These are pure functions shared by the SDK-driven path and the lean stateless path, so both put the
same bytes on the wire. Field names follow the MCP schema (camelCase).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import weakref
from collections.abc import Mapping
from typing import Any

from mcp_types import CLIENT_CAPABILITIES_META_KEY

from toolbridge._advice import error_text
from toolbridge._forks import reseed_after_fork
from toolbridge._shape import CallResult, shape
from toolbridge.catalog import MCP_NAME_META_KEY, Tool, plain_json
from toolbridge.connectors._input import CallInput
from toolbridge.errors import (
    CallerError,
    CredentialsError,
    ToolbridgeError,
    ToolNotFound,
    UpstreamError,
    UpstreamRpcError,
    UpstreamToolError,
    problem,
)

__all__ = [
    "IDEMPOTENCY_META_KEYS",
    "INVALID_REQUEST_BODY",
    "REQUEST_ID_META_KEY",
    "ProtocolError",
    "RequestIds",
    "ToolCache",
    "agent_input",
    "call_result",
    "error_result",
    "idempotency_key",
    "is_jsonrpc_message",
    "is_tool_error",
    "passthrough_result",
    "protocol_error",
    "relayed_error",
    "round_key",
    "upstream_error_result",
]

INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
IDEMPOTENCY_META_KEYS = ("toolbridge/idempotency-key", "idempotencyKey")
REQUEST_ID_META_KEY = "toolbridge/request-id"
PROBLEM_META_KEY = "toolbridge/problem"
_MAX_IDEMPOTENCY_KEY = 255
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ProtocolError(Exception):
    """A JSON-RPC error to answer instead of a result (code, message, data)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class ToolCache:
    """Wire forms of tools, built once per tool object (tools are immutable)."""

    def __init__(self) -> None:
        self._wire: dict[str, tuple[Tool, dict[str, Any]]] = {}

    def wire(self, tool: Tool) -> dict[str, Any]:
        cached = self._wire.get(tool.name)
        if cached is not None and cached[0] is tool:
            return cached[1]
        wire = tool_to_wire(tool)
        self._wire[tool.name] = (tool, wire)
        return wire

    def listing(self, tools: list[Tool]) -> list[dict[str, Any]]:
        return [self.wire(tool) for tool in tools]


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    """The MCP ``Tool`` object for ``tool``."""
    hints = tool.annotations
    annotations: dict[str, Any] = {
        "readOnlyHint": hints.read_only,
        "destructiveHint": hints.destructive,
        "idempotentHint": hints.idempotent,
        "openWorldHint": hints.open_world,
    }
    wire: dict[str, Any] = {"name": tool.meta.get(MCP_NAME_META_KEY) or tool.name}
    if tool.title:
        wire["title"] = tool.title
        annotations["title"] = tool.title
    wire["description"] = tool.description
    wire["inputSchema"] = plain_json(tool.input_schema)
    if tool.output_schema is not None:
        wire["outputSchema"] = plain_json(tool.output_schema)
    wire["annotations"] = annotations
    execution = tool.meta.get("toolbridge/upstream", {}).get("execution")
    if isinstance(execution, dict):  # an upstream tool's task support (tasks are passed through)
        wire["execution"] = execution
    return wire


def call_result(result: CallResult, *, output_schema: bool) -> dict[str, Any]:
    """The ``CallToolResult`` for a successful call.

    ``structuredContent`` carries the value when it is a JSON object. A result cut by the hub's size cap
    keeps its marker text; when the tool declares an output schema the cut result cannot conform to
    it, so it is flagged ``isError`` (clients validate only successful structured results).
    """
    wire: dict[str, Any] = {"content": [{"type": "text", "text": result.text}]}
    if isinstance(result.value, dict) and not result.truncated:
        wire["structuredContent"] = result.value
    wire["isError"] = result.truncated and output_schema
    wire["resultType"] = "complete"
    wire["_meta"] = {REQUEST_ID_META_KEY: result.request_id}
    return wire


def passthrough_result(result: CallResult) -> dict[str, Any]:
    """The ``CallToolResult`` of an upstream MCP tool as the upstream sent it (content, structured content,
    ``_meta``), or its ``input_required`` result; toolbridge adds its request id to ``_meta``.

    A result cut by the size cap has no value any more and goes through :func:`call_result` instead.
    """
    value: dict[str, Any] = result.value
    wire = {"resultType": "complete", **value}
    if wire["resultType"] == "complete":
        wire["isError"] = False
    wire["_meta"] = {**(value.get("_meta") or {}), REQUEST_ID_META_KEY: result.request_id}
    return wire


def upstream_error_result(exc: UpstreamToolError, request_id: str, *, max_bytes: int) -> dict[str, Any]:
    """An upstream tool's ``isError`` result, whole (images, ``structuredContent``, ``_meta``) with
    toolbridge's request id in ``_meta``; over the size cap, its text cut as any result's."""
    answer = exc.answer
    raw_meta = answer.get("_meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    wire = {
        **answer,
        "isError": True,
        "resultType": "complete",
        "_meta": {**meta, REQUEST_ID_META_KEY: request_id},
    }
    truncated = shape(wire, max_bytes=max_bytes)[2]
    if not truncated:
        return wire
    raw = answer.get("content")
    texts = [c.get("text", "") for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []
    _, cut, _, _ = shape("\n".join(t for t in texts if isinstance(t, str)), max_bytes=max_bytes)
    return {**error_result(exc, request_id), "content": [{"type": "text", "text": cut}]}


def relayed_error(exc: UpstreamRpcError) -> ProtocolError:
    """An upstream MCP server's JSON-RPC error, relayed as it came (code, message, ``data``)."""
    answer = exc.answer
    return ProtocolError(
        int(answer.get("code", INTERNAL_ERROR)), str(answer.get("message", "")), answer.get("data")
    )


def round_key(key: str | None, agent: CallInput | None) -> str | None:
    """The idempotency key of one round of a multi-round call: a retry that answers an upstream's input
    requests is a new round (its own key, from the answers and state), or it would replay the round
    that asked; the same round sent again still replays."""
    if key is None or agent is None or (agent.responses is None and agent.state is None):
        return key
    answers = json.dumps([agent.responses, agent.state], sort_keys=True, separators=(",", ":"))
    return f"{key[: _MAX_IDEMPOTENCY_KEY - 17]}:{hashlib.sha256(answers.encode()).hexdigest()[:16]}"


def agent_input(modern: bool, params: Mapping[str, Any]) -> CallInput | None:
    """What a 2026-07-28 request brings for an upstream that asks for input: the client's capabilities,
    ``inputResponses`` and ``requestState``. None for an older client (it cannot answer such requests)."""
    if not modern:
        return None
    meta = params.get("_meta")
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, Mapping) else None
    responses = params.get("inputResponses")
    state = params.get("requestState")
    return CallInput(
        dict(capabilities) if isinstance(capabilities, Mapping) else {},
        dict(responses) if isinstance(responses, Mapping) else None,
        state if isinstance(state, str) else None,
    )


def is_tool_error(exc: ToolbridgeError) -> bool:
    """Whether ``exc`` belongs in a ``CallToolResult`` (the model can act on it), not a protocol error."""
    if isinstance(exc, ToolNotFound):
        return False
    return isinstance(exc, CallerError | UpstreamError | CredentialsError)


def error_result(exc: ToolbridgeError, request_id: str) -> dict[str, Any]:
    """A ``CallToolResult`` with ``isError`` whose text says what was wrong and what to do (with the
    upstream's error body and the wait before a retry: the model reads the text, not ``_meta``)."""
    return {
        "content": [{"type": "text", "text": error_text(exc)}],
        "isError": True,
        "resultType": "complete",
        "_meta": {REQUEST_ID_META_KEY: request_id, PROBLEM_META_KEY: problem(exc)},
    }


def protocol_error(exc: ToolbridgeError) -> ProtocolError:
    """The JSON-RPC error for a failure that is not the tool's (unknown tool, server trouble); an upstream
    MCP server's own JSON-RPC error is relayed as it came."""
    if isinstance(exc, UpstreamRpcError):
        return relayed_error(exc)
    message = f"{exc.message}: {exc.hint}" if exc.hint else exc.message
    code = INVALID_PARAMS if isinstance(exc, ToolNotFound) else INTERNAL_ERROR
    return ProtocolError(code, message, problem(exc))


def idempotency_key(params: Mapping[str, Any] | None) -> str | None:
    """The idempotency key a client put in the request's ``_meta``, if any."""
    meta = params.get("_meta") if params else None
    if not isinstance(meta, Mapping):
        return None
    for key in meta:  # a near miss is refused: ignored, it let the same write apply twice
        if key not in IDEMPOTENCY_META_KEYS and "idempotency" in re.sub(r"[^a-z]", "", str(key).lower()):
            raise ProtocolError(
                INVALID_PARAMS,
                f"_meta[{key!r}] is not read: put the idempotency key in "
                f"_meta[{IDEMPOTENCY_META_KEYS[0]!r}] (or _meta['idempotencyKey'])",
            )
    for key in IDEMPOTENCY_META_KEYS:
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_IDEMPOTENCY_KEY:
            raise ProtocolError(
                INVALID_PARAMS,
                f"_meta[{key!r}] must be a string of 1 to {_MAX_IDEMPOTENCY_KEY} characters: "
                "send a unique key per logical operation (a UUID works)",
            )
        return value
    return None


CONNECTION_META_KEY = "toolbridge/connection"


def connection_choice(params: Mapping[str, Any] | None) -> str | None:
    """The connection (account name or id) a client chose in ``_meta["toolbridge/connection"]``."""
    meta = params.get("_meta") if params else None
    value = meta.get(CONNECTION_META_KEY) if isinstance(meta, Mapping) else None
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise ProtocolError(
            INVALID_PARAMS,
            f"_meta[{CONNECTION_META_KEY!r}] must be an account name or connection id (1 to 128 characters)",
        )
    return value


class RequestIds:
    """Request ids for calls whose caller sent none: a random per-instance prefix and a counter.

    Unique across processes (the prefix) without a system call per request; they identify, they
    authorize nothing, so they need not be unguessable.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._count = itertools.count(1)
        _ALL_IDS.add(self)
        reseed_after_fork(_reseed_all)

    def reseed(self) -> None:
        """A new prefix (after a fork: a worker must not repeat its parent's ids)."""
        self._prefix, self._count = secrets.token_hex(4), itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._count):08x}"

    def from_header(self, value: str | None) -> str:
        """The caller's ``X-Request-Id`` when it is a sane token, else a fresh id."""
        if value is not None and _REQUEST_ID.fullmatch(value):
            return value
        return self.new()


_ALL_IDS: weakref.WeakSet[RequestIds] = weakref.WeakSet()


def _reseed_all() -> None:
    for ids in list(_ALL_IDS):
        ids.reseed()


def is_jsonrpc_message(body: bytes) -> bool:
    """False when ``body`` is JSON but not one JSON-RPC 2.0 message object (a batch, a bare value, no method).

    Unparseable bodies count as messages here: the SDK answers those with a parse error (-32700).
    """
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return True
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return False
    if "id" in message and (isinstance(message["id"], bool) or not isinstance(message["id"], str | int)):
        return False  # MCP ids are strings or integers: another was taken for a notification, never answered
    if isinstance(message.get("method"), str):
        return True
    return "id" in message and ("result" in message or "error" in message)


_PARAMS = re.compile(rb'"params"\s*:\s*(.)')
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def params_refusal(body: bytes) -> bytes | None:
    """The answer to a request whose ``params`` are not an object (MCP names its parameters): -32602 with
    the request's id and what to send. The SDK answered -32602 with ``id: null`` and a pydantic dump
    (2025-11-25) or -32600 (2026-07-28). None when they are an object, or absent (the text is searched
    first: the first ``"params"`` key of a request is its own, arguments come inside it)."""
    found = _PARAMS.search(body)
    if found is None or found.group(1) == b"{":
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the SDK answers -32700
    if not isinstance(message, dict) or "params" not in message or isinstance(message["params"], dict):
        return None
    ident = message.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        ident = None
    kind = "null" if message["params"] is None else _JSON_TYPES.get(type(message["params"]), "not an object")
    method = message.get("method")
    example = '{"name": "…", "arguments": {…}}' if method == "tools/call" else "{…} (or no params)"
    error = {
        "code": INVALID_PARAMS,
        "message": f"Invalid params: {method!r} takes params as an object, "
        f'not {kind}: send "params": {example}',
    }
    return json.dumps({"jsonrpc": "2.0", "id": ident, "error": error}).encode()


INVALID_REQUEST_BODY = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": INVALID_REQUEST,
            "message": "Invalid Request: the body must be one JSON-RPC 2.0 request, notification or response "
            'object ({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) whose id, if any, is a string or '
            "an integer",
        },
    }
).encode()
