"""What an upstream's answers and definitions become in toolbridge: call values, errors, schemas."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.shared.inbound import find_invalid_x_mcp_header

from toolbridge.connectors.mcp._session import RpcError
from toolbridge.errors import ToolExecutionError, UpstreamStatusError

__all__ = ["call_value", "invalid_headers", "object_schema", "rpc_error"]

logger = logging.getLogger("toolbridge.connectors.mcp")

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


def call_value(result: Mapping[str, Any], tool: str) -> dict[str, Any]:
    """The upstream ``CallToolResult`` as the call's value; an ``isError`` result raises."""
    raw = result.get("content")
    content: list[Any] = raw if isinstance(raw, list) else []
    if result.get("isError"):
        texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
        raise ToolExecutionError(
            "the upstream tool reported an error: " + ("\n".join(texts)[:2000] or "(no text)"),
            tool=tool,
            hint="check the arguments; the message above is the upstream tool's own",
        )
    value: dict[str, Any] = {"content": content}
    if "structuredContent" in result:
        value["structuredContent"] = result["structuredContent"]
    return value


def rpc_error(exc: RpcError, method: str, where: str, tool: str | None) -> UpstreamStatusError:
    status = _RPC_STATUS.get(exc.code, 502)
    return UpstreamStatusError(
        f"{where} refused {method}: {exc.message} (JSON-RPC error {exc.code})",
        upstream_status=status,
        tool=tool,
        hint="fix the arguments" if status == 400 else None,
    )
