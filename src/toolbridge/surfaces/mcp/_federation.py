"""Prompts and resources of federated upstream MCP servers, served beside the tools.

Registered only when the hub has upstream MCP connectors, so a hub without them keeps declaring tools
alone. An agent sees the prompts and resources of a connector when it may see any of that connector's
tools; reads and prompt requests go through the connector's pooled session under the hub's deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError

from toolbridge.connectors.mcp import McpConnector
from toolbridge.errors import ToolbridgeError, UpstreamTimeout
from toolbridge.surfaces.mcp._bridge import CallContext
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, protocol_error

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = ["add_federation"]

RESOURCE_NOT_FOUND = -32002
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]


def _connectors(hub: Hub) -> list[McpConnector]:
    found = [hub.connector(name) for name in hub.connector_names()]
    return [c for c in found if isinstance(c, McpConnector)]


def _visible(hub: Hub, principal: Principal) -> list[McpConnector]:
    seen = {tool.connector for tool in hub.list_tools(principal)}
    return [c for c in _connectors(hub) if c.name in seen]


async def _upstream(hub: Hub, work: Callable[[float], Any]) -> Any:
    """Run an upstream request under the hub's call deadline; our errors become JSON-RPC errors."""
    timeout = hub.limits.call_timeout
    try:
        with anyio.move_on_after(timeout) as scope:
            return await work(anyio.current_time() + timeout)
        assert scope.cancelled_caught
        raise UpstreamTimeout(f"the upstream did not answer within {timeout:g} s")
    except ToolbridgeError as exc:
        error = protocol_error(exc)
        raise MCPError(error.code, error.message, error.data) from exc


_PRIVATE = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete"}
"""What an agent may see depends on its scopes: never for shared caches (as tools/list)."""


def _listing(key: str, items: list[Any]) -> dict[str, Any]:
    return {key: items, **_PRIVATE}


def add_federation(server: Server[Any], hub: Hub, context_of: ContextOf) -> None:
    """Serve upstream prompts and resources on ``server`` (only if the hub federates MCP servers)."""
    if not _connectors(hub):
        return

    async def list_prompts(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        principal = context_of(ctx).principal
        return _listing(
            "prompts", [w for c in _visible(hub, principal) for _, w in c.extras.prompts.values()]
        )

    async def get_prompt(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        name = str((ctx.params or {}).get("name", ""))
        arguments = (ctx.params or {}).get("arguments") or {}
        owner = next((c for c in _visible(hub, context_of(ctx).principal) if name in c.extras.prompts), None)
        if owner is None:
            raise MCPError(INVALID_PARAMS, f"no prompt named {name!r}; list them with prompts/list")
        result = await _upstream(hub, lambda deadline: owner.get_prompt(name, arguments, deadline=deadline))
        return {**result, "resultType": "complete"}

    async def list_resources(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        visible = _visible(hub, context_of(ctx).principal)
        return _listing("resources", [r for c in visible for r in c.extras.resources.values()])

    async def list_templates(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        visible = _visible(hub, context_of(ctx).principal)
        return _listing("resourceTemplates", [t for c in visible for t in c.extras.templates])

    async def read_resource(ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        uri = str((ctx.params or {}).get("uri", ""))
        owner = next((c for c in _visible(hub, context_of(ctx).principal) if c.extras.owns(uri)), None)
        if owner is None:
            raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r}; list them with resources/list")
        result = await _upstream(hub, lambda deadline: owner.read_resource(uri, deadline=deadline))
        return {**result, **_PRIVATE}

    server.add_request_handler("prompts/list", types.PaginatedRequestParams, list_prompts)
    server.add_request_handler("prompts/get", types.GetPromptRequestParams, get_prompt)
    server.add_request_handler("resources/list", types.PaginatedRequestParams, list_resources)
    server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, list_templates)
    server.add_request_handler("resources/read", types.ReadResourceRequestParams, read_resource)
