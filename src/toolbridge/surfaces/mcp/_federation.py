"""Prompts and resources of federated upstream MCP servers, served beside the tools.

Registered only when the hub has upstream MCP connectors (resources also when it has event
subscriptions, served as ``toolbridge://events/<name>`` by ``_events``), so a hub without them keeps
declaring tools alone. An agent sees the prompts and resources of a connector when it may see any of
that connector's tools; reads and prompt requests go through the connector's pooled session under the
hub's deadline, and each one is audited like a tool call (``tool`` is ``prompts/get <prompt>`` or
``resources/read <connector>``; the arguments and the URI are digested, never stored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.exceptions import MCPError
from mcp_types.methods import is_input_required

from toolbridge._perform import upstream_read
from toolbridge.connectors._input import CALL_INPUT
from toolbridge.connectors.mcp import McpConnector
from toolbridge.errors import ToolbridgeError
from toolbridge.surfaces.mcp._bridge import CallContext
from toolbridge.surfaces.mcp._events import (
    event_resources,
    event_templates,
    is_event_uri,
    read_event_resource,
    serves_events,
)
from toolbridge.surfaces.mcp._pages import one_page
from toolbridge.surfaces.mcp._wire import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    ProtocolError,
    agent_input,
    protocol_error,
)

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = ["add_federation", "mcp_connectors", "mcp_error"]

RESOURCE_NOT_FOUND = -32002
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]


def mcp_connectors(hub: Hub) -> list[McpConnector]:
    found = [hub.connector(name) for name in hub.connector_names()]
    return [c for c in found if isinstance(c, McpConnector)]


def _visible(hub: Hub, principal: Principal) -> list[McpConnector]:
    seen = {tool.connector for tool in hub.list_tools(principal)}
    return [c for c in mcp_connectors(hub) if c.name in seen]


async def _upstream(
    hub: Hub,
    caller: CallContext,
    what: tuple[str, str],
    arguments: Mapping[str, Any],
    work: Callable[[float], Awaitable[Any]],
    raw_params: Mapping[str, Any] | None = None,
) -> Any:
    """Ask ``what`` (connector, action) of an upstream as the caller, through ``Hub.perform`` (rate limit,
    one audit row) and the connector's resilience, under the hub's call deadline; our errors become
    JSON-RPC errors, the upstream's are relayed as they came. ``raw_params`` (the agent's request) may
    answer an upstream's input requests (2026-07-28)."""
    connector, action = what
    token = CALL_INPUT.set(agent_input(caller.modern, raw_params or {}))
    try:
        async with hub.perform(caller.principal, action, arguments, scope=None, request_id=caller.request_id):
            return await upstream_read(hub, connector, action, work)
    except ToolbridgeError as exc:
        raise mcp_error(exc) from exc
    finally:
        CALL_INPUT.reset(token)


def mcp_error(exc: ToolbridgeError) -> MCPError:
    """Our error as a JSON-RPC error (an upstream's own JSON-RPC error is relayed as it came)."""
    error = protocol_error(exc)
    return MCPError(error.code, error.message, error.data)


_PRIVATE = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete"}
"""What an agent may see depends on its scopes: never for shared caches (as tools/list)."""


def _relayed(result: Mapping[str, Any], *, private: bool = False) -> dict[str, Any]:
    """An upstream's answer with its own ``resultType`` (an ``input_required`` one stays that, and takes
    no cache hints); ``private``: toolbridge's cache hints replace the upstream's."""
    if is_input_required(result):
        return dict(result)
    return {**result, **_PRIVATE} if private else {**result, "resultType": "complete"}


def _has_template(connector: McpConnector, uri: str) -> bool:
    return any(t.get("uriTemplate") == uri for t in connector.extras.templates)


def _one_page(method: str, params: Any) -> None:
    try:
        one_page(method, getattr(params, "cursor", None))
    except ProtocolError as exc:
        raise MCPError(exc.code, exc.message, exc.data) from exc


def _listing(key: str, items: list[Any]) -> dict[str, Any]:
    return {key: items, **_PRIVATE}


def add_federation(server: Server[Any], hub: Hub, context_of: ContextOf) -> None:
    """Serve upstream prompts and resources on ``server`` (only if the hub federates MCP servers)."""
    federates, events = bool(mcp_connectors(hub)), serves_events(hub)
    if not federates and not events:
        return
    served = _Federation(hub, context_of)
    server.add_request_handler("resources/list", types.PaginatedRequestParams, served.list_resources)
    server.add_request_handler(
        "resources/templates/list", types.PaginatedRequestParams, served.list_templates
    )
    server.add_request_handler("resources/read", types.ReadResourceRequestParams, served.read_resource)
    if federates:
        server.add_request_handler("prompts/list", types.PaginatedRequestParams, served.list_prompts)
        server.add_request_handler("prompts/get", types.GetPromptRequestParams, served.get_prompt)
        server.add_request_handler("completion/complete", types.CompleteRequestParams, served.complete)


class _Federation:
    """The handlers: each answers from the connectors the caller may see, or asks their upstream."""

    def __init__(self, hub: Hub, context_of: ContextOf) -> None:
        self.hub = hub
        self.context_of = context_of

    def _visible(self, ctx: ServerRequestContext[Any, Any]) -> tuple[CallContext, list[McpConnector]]:
        caller = self.context_of(ctx)
        return caller, _visible(self.hub, caller.principal)

    async def list_prompts(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        _one_page("prompts/list", params)
        _, visible = self._visible(ctx)
        return _listing("prompts", [w for c in visible for _, w in c.extras.prompts.values()])

    async def get_prompt(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        name = str((ctx.params or {}).get("name", ""))
        arguments = (ctx.params or {}).get("arguments") or {}
        caller, visible = self._visible(ctx)
        owner = _prompt_owner(visible, name)
        result = await _upstream(
            self.hub,
            caller,
            (owner.name, f"prompts/get {name}"),
            arguments,
            lambda d: owner.get_prompt(name, arguments, deadline=d),
            ctx.params,
        )
        return _relayed(result)

    async def list_resources(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        _one_page("resources/list", params)
        caller, visible = self._visible(ctx)
        upstream = [r for c in visible for r in c.extras.resources.values()]
        return _listing("resources", [*event_resources(self.hub, caller.principal), *upstream])

    async def list_templates(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        _one_page("resources/templates/list", params)
        caller, visible = self._visible(ctx)
        upstream = [t for c in visible for t in c.extras.templates]
        return _listing("resourceTemplates", [*event_templates(self.hub, caller.principal), *upstream])

    async def read_resource(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        uri = str((ctx.params or {}).get("uri", ""))
        caller, visible = self._visible(ctx)
        if is_event_uri(uri):
            return await read_event_resource(self.hub, caller, uri)
        owner = next((c for c in visible if c.extras.owns(uri)), None)
        if owner is None:
            raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r}; list them with resources/list")
        result = await _upstream(
            self.hub,
            caller,
            (owner.name, f"resources/read {owner.name}"),
            {"uri": uri},
            lambda d: owner.read_resource(uri, deadline=d),
            ctx.params,
        )
        return _relayed(result, private=True)

    async def complete(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        raw = dict(ctx.params or {})
        ref: dict[str, Any] = raw["ref"] if isinstance(raw.get("ref"), dict) else {}
        caller, visible = self._visible(ctx)
        if ref.get("type") == "ref/prompt":
            owner = _prompt_owner(visible, str(ref.get("name", "")))
        else:
            uri = str(ref.get("uri", ""))
            found = next((c for c in visible if _has_template(c, uri) or c.extras.owns(uri)), None)
            if found is None:
                raise MCPError(
                    INVALID_PARAMS, f"no resource template {uri!r}; list them with resources/templates/list"
                )
            owner = found
        if "completions" not in owner.capabilities:
            raise MCPError(METHOD_NOT_FOUND, f"the server behind {owner.name!r} offers no completions")
        result = await _upstream(
            self.hub,
            caller,
            (owner.name, f"completion/complete {owner.name}"),
            {"ref": ref, "argument": raw.get("argument")},
            lambda d: owner.complete(raw, deadline=d),
        )
        return {**result, "resultType": "complete"}


def _prompt_owner(visible: list[McpConnector], name: str) -> McpConnector:
    owner = next((c for c in visible if name in c.extras.prompts), None)
    if owner is None:
        raise MCPError(INVALID_PARAMS, f"no prompt named {name!r}; list them with prompts/list")
    return owner
