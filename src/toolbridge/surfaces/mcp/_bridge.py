"""The MCP methods toolbridge serves, in terms of the Hub: ``tools/list`` and ``tools/call``.

Transport-free: the SDK-driven server and the lean stateless path both call these, so every MCP
surface answers the same way. Errors leave as wire results (tool errors) or :class:`ProtocolError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from toolbridge._suggest import close_matches
from toolbridge._trace import continued
from toolbridge.catalog import MCP_NAME_META_KEY, MCP_RESULT_META_KEY
from toolbridge.connectors._input import CALL_INPUT
from toolbridge.errors import (
    ConfigurationError,
    ToolbridgeError,
    ToolNotFound,
    UpstreamRpcError,
    UpstreamToolError,
)
from toolbridge.surfaces.mcp._pages import tools_page
from toolbridge.surfaces.mcp._search import META_SCHEMAS, META_TOOLS, in_search_mode, meta_step, not_found
from toolbridge.surfaces.mcp._wire import (
    IDEMPOTENCY_META_KEYS,
    INVALID_PARAMS,
    ProtocolError,
    ToolCache,
    agent_input,
    call_result,
    connection_choice,
    error_result,
    idempotency_key,
    is_tool_error,
    passthrough_result,
    protocol_error,
    relayed_error,
    round_key,
    upstream_error_result,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from toolbridge import CallResult, Hub, Principal

__all__ = ["Bridge", "CallContext", "aliases", "call_params"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling, and the request id their audit rows carry."""

    principal: Principal
    request_id: str
    modern: bool = False
    """Whether the request is of the 2026-07-28 era (it can answer an upstream's input requests)."""
    parent: Context | None = None
    """The trace context the request carried, when its call runs in a task that did not inherit it."""


class Bridge:
    """Serves MCP tool methods from a :class:`~toolbridge.Hub`."""

    def __init__(self, hub: Hub, *, page_size: int = 500) -> None:
        self.hub = hub
        self.page_size = page_size
        """Tools per ``tools/list`` page (1,000 tools of large APIs are over 1 MB)."""
        self._tools = ToolCache()
        self._aliases: dict[str, str] = {}
        """MCP name → catalog name, for tools of upstreams mounted without their prefix."""

    def catalog_name(self, name: str) -> str:
        """The catalog name of the tool MCP clients call ``name``: itself, or the tool of an upstream
        mounted unprefixed that the upstream calls so (a catalog name always wins)."""
        if name in self.hub.catalog:
            return name
        found = self._aliases.get(name)
        if found is None or found not in self.hub.catalog:
            self._aliases = aliases(self.hub)
            found = self._aliases.get(name)
        return found or name

    def list_tools(self, principal: Principal, cursor: str | None = None) -> dict[str, Any]:
        """The ``ListToolsResult``: only the tools the principal's scopes allow, :attr:`page_size` at a
        time (``nextCursor`` asks for the next page; the cursor names the page's last tool, so pages
        stay consistent when tools come and go).

        The listing depends on the caller, so it is never for shared caches (``cacheScope: private``),
        and scopes can change at any time (``ttlMs: 0``).
        """
        result: dict[str, Any] = {"ttlMs": 0, "cacheScope": "private", "resultType": "complete"}
        if in_search_mode(self.hub, principal):
            return {"tools": META_TOOLS, **result}
        tools, last = tools_page(self.hub.list_tools(principal), cursor, self.page_size)
        result = {"tools": self._tools.listing(tools), **result}
        if last is not None:
            result["nextCursor"] = last
        return result

    def input_schema(self, principal: Principal, name: str) -> Mapping[str, Any] | None:
        """The input schema of a tool the principal can see, else None."""
        if name in META_SCHEMAS and in_search_mode(self.hub, principal):
            return META_SCHEMAS[name]
        try:
            return self.hub.get_tool(principal, self.catalog_name(name)).input_schema
        except ToolNotFound:
            return None

    async def call_tool(self, ctx: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``CallToolResult`` for ``params`` (``name``, ``arguments``, ``_meta``; in the 2026-07-28 era
        also ``inputResponses`` and ``requestState``, passed to an upstream MCP tool that asked for input)."""
        token = CALL_INPUT.set(agent_input(ctx.modern, params))
        try:
            with continued(ctx.parent):
                return await self._call_tool(ctx, params)
        finally:
            CALL_INPUT.reset(token)

    async def _call_tool(self, ctx: CallContext, params: Mapping[str, Any]) -> dict[str, Any]:
        name, arguments = call_params(params)
        searching = name in META_SCHEMAS and in_search_mode(self.hub, ctx.principal)
        if searching:
            await self.hub.catalog.prepare_search()  # built off the event loop after a catalog change
            answer, params = meta_step(self.hub, ctx.principal, ctx.request_id, params)
            if answer is not None:
                return answer
            name, arguments = call_params(params)
        key = round_key(idempotency_key(params), CALL_INPUT.get())
        try:
            result = await self.hub.call(
                ctx.principal,
                self.catalog_name(name),
                arguments,
                connection=connection_choice(params),
                idempotency_key=key,
                request_id=ctx.request_id,
            )
        except ToolNotFound as exc:
            # the index's guesses; an agent in search mode is pointed at search_tools, not at tools/list
            search_mode = searching or in_search_mode(self.hub, ctx.principal)
            missing = not_found(self.hub, ctx.principal, exc, searching=search_mode)
            missing = self._by_mcp_names(ctx.principal, missing)
            if searching:  # call_tool exists; the tool it names does not
                return error_result(missing, ctx.request_id)
            raise protocol_error(missing) from exc
        except ToolbridgeError as exc:
            if isinstance(exc, UpstreamRpcError):
                raise relayed_error(exc) from exc  # the upstream's own code, message and data
            if isinstance(exc, UpstreamToolError):
                return upstream_error_result(exc, ctx.request_id, max_bytes=self.hub.limits.max_result_bytes)
            if is_tool_error(exc):
                return error_result(exc, ctx.request_id)
            raise protocol_error(exc) from exc
        if isinstance(result.value, dict) and self._passes_through(ctx.principal, result.tool):
            return passthrough_result(result)
        return call_result(result, output_schema=self._declares_output(ctx.principal, result))

    def _by_mcp_names(self, principal: Principal, exc: ToolNotFound) -> ToolNotFound:
        """``exc`` suggesting tools by the names MCP clients list them under: an unprefixed upstream's
        tool by the upstream's name, and spelt close to that name (it suggested the catalog's
        ``conf.test_tool_with_logging`` beside a ``tools/list`` that says ``test_tool_with_logging``, and
        nothing for ``refuze`` beside ``refuse``)."""
        if exc.tool is None or (not self._aliases and not aliases(self.hub)):
            return exc
        named = [self._mcp_name(name) for name in exc.suggestions]
        if not named:
            listed = (self._mcp_name(tool.name) for tool in self.hub.list_tools(principal))
            named = close_matches(exc.tool, listed, cutoff=0.75)
        if named == exc.suggestions:
            return exc
        return ToolNotFound(exc.tool, suggestions=named)

    def _mcp_name(self, name: str) -> str:
        alias = self.hub.catalog.get(name).meta.get(MCP_NAME_META_KEY) if name in self.hub.catalog else None
        return alias if isinstance(alias, str) else name

    def _passes_through(self, principal: Principal, name: str) -> bool:
        """Whether the tool's results are upstream MCP results, handed on as they came."""
        try:
            return bool(self.hub.get_tool(principal, name).meta.get(MCP_RESULT_META_KEY))
        except ToolNotFound:
            return False

    def _declares_output(self, principal: Principal, result: CallResult) -> bool:
        if not result.truncated:
            return False  # only a cut result needs to know (see call_result)
        try:
            return self.hub.get_tool(principal, result.tool).output_schema is not None
        except ToolNotFound:
            return False


def aliases(hub: Hub) -> dict[str, str]:
    """MCP name → catalog name of every tool known to MCP clients by another name; an MCP name that is
    another tool's catalog name, or that two tools share, is a :class:`ConfigurationError`."""
    found: dict[str, str] = {}
    for tool in hub.catalog:
        alias = tool.meta.get(MCP_NAME_META_KEY)
        if not isinstance(alias, str):
            continue
        if alias in hub.catalog or alias in found:
            raise ConfigurationError(
                f"the tools {tool.name!r} and {found.get(alias, alias)!r} are both called {alias!r} over MCP",
                hint=f"mount the connector {tool.connector!r} with its prefix (prefix: true), or hide one",
            )
        found[alias] = tool.name
    return found


_MISPLACED: Final = {
    **dict.fromkeys(("args", "argument", "parameters", "params", "input", "inputs", "kwargs"), "arguments"),
    "idempotencykey": "key",
}
"""Normalized params keys (lower case, letters only) that stand for something tools/call reads elsewhere."""
_WHERE: Final = {
    "arguments": 'send the tool\'s arguments as params.arguments: {"name": "...", "arguments": {...}}',
    "key": f"put the idempotency key in params._meta[{IDEMPOTENCY_META_KEYS[0]!r}]",
}


_PROTOCOL_KEYS: Final = frozenset({"name", "arguments", "_meta", "task", "inputResponses", "requestState"})
"""What tools/call reads in its params, in either era (``task``: the tasks extension's; the last two: the
answers to an upstream tool's ``input_required``)."""


def call_params(params: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """A tools/call's tool name and arguments, or the -32602 :class:`ProtocolError` saying how to fix them."""
    name = params.get("name")
    arguments = params.get("arguments")
    for key in params:  # what an agent meant as its arguments or its key, misplaced: refused, not dropped
        misplaced = _MISPLACED.get(re.sub(r"[^a-z]", "", str(key).lower()))
        if misplaced is not None and not (misplaced == "arguments" and "arguments" in params):
            raise ProtocolError(INVALID_PARAMS, f"params.{key} is not read: {_WHERE[misplaced]}")
    if not isinstance(name, str):
        raise ProtocolError(
            INVALID_PARAMS, "tools/call needs params.name, the name of a tool from tools/list"
        )
    stray = [str(key) for key in params if key not in _PROTOCOL_KEYS]
    if stray and not arguments:  # the tool's own arguments beside name: dropped, they read as missing
        fields = ", ".join(f"{json.dumps(key)}: …" for key in stray)
        raise ProtocolError(
            INVALID_PARAMS,
            f"{', '.join(f'params.{key}' for key in stray)} {'is' if len(stray) == 1 else 'are'} not read: "
            f'the tool\'s arguments go under params.arguments: {{"name": {json.dumps(name)}, '
            f'"arguments": {{{fields}}}}}',
        )
    if arguments is None:
        return name, {}
    if not isinstance(arguments, Mapping):
        raise ProtocolError(INVALID_PARAMS, 'params.arguments must be a JSON object: {"field": value, ...}')
    return name, arguments
