"""What an upstream's answers and definitions become in toolbridge: call values, errors, schemas."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.shared.inbound import find_invalid_x_mcp_header
from mcp_types.methods import is_input_required

from toolbridge.connectors._input import CallInput
from toolbridge.connectors.mcp._session import RpcError
from toolbridge.errors import InputRequired, UpstreamRpcError, UpstreamToolError

__all__ = ["call_value", "checked_input", "invalid_headers", "object_schema", "own_answer", "rpc_error"]

logger = logging.getLogger("toolbridge.connectors.mcp")

SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"
_RPC_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32601: 404, -32002: 404, -32603: 500}


def invalid_headers(name: str, listed: Mapping[str, Any]) -> bool:
    reason = find_invalid_x_mcp_header(listed.get("inputSchema"))
    if reason is not None:
        logger.warning("leaving out upstream tool %r: invalid x-mcp-header (%s)", name, reason)
    return reason is not None


def object_schema(schema: object) -> Mapping[str, Any]:
    if not isinstance(schema, dict):
        return {"type": "object"}
    if schema.get("type") != "object":
        return {**schema, "type": "object"}
    return schema


def own_answer(result: Mapping[str, Any]) -> dict[str, Any]:
    """An upstream's result without the upstream's ``serverInfo`` in ``_meta`` (2026-07-28 servers stamp
    it on every result): agents talk to toolbridge, which stamps its own. Everything else is kept."""
    meta = result.get("_meta")
    if not isinstance(meta, dict) or SERVER_INFO_META_KEY not in meta:
        return dict(result)
    kept = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
    trimmed = {k: v for k, v in result.items() if k != "_meta"}
    return {**trimmed, "_meta": kept} if kept else trimmed


def call_value(result: Mapping[str, Any], tool: str, agent: CallInput | None) -> dict[str, Any]:
    """The upstream ``CallToolResult`` as the call's value: every member but ``isError`` and a
    ``resultType`` of ``complete`` (``_meta`` included). An ``isError`` result raises
    :class:`UpstreamToolError` holding the whole result; an ``input_required`` one is the value only for
    an agent that can answer it (see :func:`checked_input`)."""
    result = own_answer(result)
    asks = is_input_required(result)  # (not narrowed: the result stays a plain mapping)
    if asks:
        return checked_input(result, f"the upstream tool {tool!r}", agent, tool=tool)
    raw = result.get("content")
    content: list[Any] = raw if isinstance(raw, list) else []
    if result.get("isError"):
        texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        raise UpstreamToolError(
            "the upstream tool reported an error: " + ("\n".join(texts)[:2000] or "(no text)"),
            answer=result,
            tool=tool,
            hint="check the arguments; the message above is the upstream tool's own",
        )
    value = {k: v for k, v in result.items() if k != "isError" and (k, v) != ("resultType", "complete")}
    value["content"] = content
    return value


def checked_input(
    result: Mapping[str, Any], what: str, agent: CallInput | None, *, tool: str | None = None
) -> dict[str, Any]:
    """An upstream's ``input_required`` result, for an agent that can answer every request in it; else
    :class:`InputRequired` saying what the caller lacks."""
    raw = result.get("inputRequests")
    requests: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    methods = sorted({str(r.get("method")) for r in requests.values() if isinstance(r, dict)})
    asked = f"{what} asks the caller for input ({', '.join(methods) or 'a new round'})"
    if agent is None:
        raise InputRequired(
            f"{asked}, which only an MCP client of the 2026-07-28 era can give (multi-round-trip requests)",
            tool=tool,
            hint="call it from an MCP client that speaks 2026-07-28 and declares the capabilities it needs",
        )
    missing = agent.missing(requests)
    if missing:
        raise InputRequired(
            f"{asked}, which needs the client capabilities {', '.join(missing)} this client did not declare",
            tool=tool,
            hint=f"declare {', '.join(missing)} in the request's clientCapabilities to answer it",
        )
    return dict(result)


def rpc_error(exc: RpcError, method: str, where: str, tool: str | None) -> UpstreamRpcError:
    """The upstream's JSON-RPC error, kept whole (``answer``) for the surfaces that relay it."""
    status = _RPC_STATUS.get(exc.code, 502)
    return UpstreamRpcError(
        f"{where} refused {method}: {exc.message} (JSON-RPC error {exc.code})",
        answer=exc.answer,
        upstream_status=status,
        tool=tool,
        hint="fix the arguments" if status == 400 else None,
    )
