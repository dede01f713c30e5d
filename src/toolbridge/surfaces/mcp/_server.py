"""The MCP SDK's low-level ``Server``, wired to a :class:`Bridge`.

The SDK owns the protocol (handshake, both eras, sessions, validation, error envelopes); we register
the two tool methods and map our :class:`ProtocolError` to the SDK's ``MCPError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import mcp_types as types
import pydantic
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.methods import SPEC_CLIENT_METHODS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge._suggest import close_matches, did_you_mean
from toolbridge.connectors._events import CALL_EVENTS, LOG_LEVELS, CallEvents
from toolbridge.connectors.mcp._tasks import TASKS_EXTENSION
from toolbridge.surfaces.mcp._asks import askable
from toolbridge.surfaces.mcp._asks import asker as _asker
from toolbridge.surfaces.mcp._bridge import Bridge, CallContext, call_params
from toolbridge.surfaces.mcp._federation import add_federation
from toolbridge.surfaces.mcp._notify import Notifier
from toolbridge.surfaces.mcp._tasks import TASKS_CAPABILITY, Tasks, created_answer
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, METHOD_NOT_FOUND, ProtocolError

__all__ = ["SERVER_NAME", "ContextOf", "build_server", "call_events", "server_version"]

SERVER_NAME = "toolbridge"
INSTRUCTIONS = (
    "toolbridge gives you one catalog of tools. Call tools/list to see the tools you may use; a failed "
    "call says what was wrong and how to fix it."
)

PROGRESS_SEND_TIMEOUT = 2.0
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]
"""Finds the caller of one request (from the HTTP request, or fixed for stdio)."""


def server_version() -> str:
    try:
        return version("toolbridge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def call_events(ctx: ServerRequestContext[Any, Any], notifier: Notifier) -> CallEvents:
    """Progress forwarding for this request, when the client asked for it (a ``progressToken``), and
    the way an upstream's requests reach the agent (:func:`_asker`).

    Progress travels on the request's own stream (stdio; a stateless-era POST, answered as SSE once
    progress arrives) — except for a handshake-era HTTP session, whose POSTs are answered with JSON:
    there it goes on the session's GET stream, the only one it has (clients match progress by token, not
    by stream). Requests to the agent take the same way, and so do the log messages a stateless-era
    upstream sends about the call (asked for at the level a 2025-11-25 agent set with
    ``logging/setLevel``, or a 2026-07-28 request's own ``logLevel``).
    """
    meta = ctx.meta if isinstance(ctx.meta, dict) else {}
    token = meta.get("progressToken", meta.get("progress_token"))
    on_get_stream = ctx.request is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
    related = None if on_get_stream or ctx.request_id is None else str(ctx.request_id)
    ask, capabilities = _asker(ctx, related), askable(ctx)
    modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
    asked = meta.get(LOG_LEVEL_META_KEY)  # a 2026-07-28 request's own opt-in
    level = (asked if asked in LOG_LEVELS else None) if modern else notifier.level_of(ctx)

    async def log(severity: str, data: Any, logger: str | None) -> None:
        said = types.LoggingMessageNotificationParams(level=severity, data=data, logger=logger)
        with anyio.move_on_after(PROGRESS_SEND_TIMEOUT):  # as progress: never holds up the upstream
            await ctx.session.send_notification(types.LoggingMessageNotification(params=said), related)

    sink = log if level is not None else None
    if not isinstance(token, str | int):
        return CallEvents(None, ask, capabilities, sink, level)

    async def progress(done: float, total: float | None, message: str | None) -> None:
        # awaited by an upstream channel's reader, shared by every call: a client that stops reading
        # loses its progress reports, it never holds up the connector
        with anyio.move_on_after(PROGRESS_SEND_TIMEOUT):
            await ctx.session.send_progress_notification(
                token, done, total, message, related_request_id=related
            )

    return CallEvents(progress, ask, capabilities, sink, level)


class _Server(Server[Any]):
    """The SDK's server, declaring ``listChanged`` (the :class:`Notifier` tells clients of changes), and
    ``tasks`` to handshake-era clients while an upstream takes task-augmented tool calls (to 2026-07-28
    clients the tasks extension, while an upstream declares it)."""

    serves_tasks: Callable[[], bool] = staticmethod(lambda: False)
    serves_task_extension: Callable[[], bool] = staticmethod(lambda: False)

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        declared = super().get_capabilities(
            notification_options, experimental_capabilities, extensions, protocol_version=protocol_version
        )
        if protocol_version in MODERN_PROTOCOL_VERSIONS:
            if not self.serves_task_extension():
                return declared
            extensions = {**(declared.extensions or {}), TASKS_EXTENSION: {}}
            return declared.model_copy(update={"extensions": extensions})
        if not self.serves_tasks():
            return declared
        return declared.model_copy(update={"tasks": TASKS_CAPABILITY})

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        every = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
        return super().create_initialization_options(
            notification_options or every, experimental_capabilities, extensions
        )


_CALL_SHAPE = (
    'tools/call needs params {"name": "<a tool from tools/list>", "arguments": {"field": value, ...}}'
)


async def _checked_call(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """A malformed tools/call answered with what is wrong and the shape to send, before the SDK's own check
    of the params (which answers a bare "Invalid request parameters")."""
    if ctx.method == "tools/call":
        params = ctx.params
        try:
            if not isinstance(params, Mapping):
                raise ProtocolError(INVALID_PARAMS, _CALL_SHAPE)
            call_params(params)
        except ProtocolError as exc:
            raise MCPError(exc.code, exc.message, exc.data) from None
    elif (model := _PARAMS.get(ctx.method)) is not None and not (
        ctx.method in _HANDSHAKE_ONLY and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
    ):  # (a method the stateless era removed is answered 404 / -32601 by the SDK, whatever its params)
        try:
            model.model_validate(ctx.params if ctx.params is not None else {})
        except (
            pydantic.ValidationError
        ) as exc:  # the SDK's answer names no field: "Invalid request parameters"
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
            said = "; ".join(f"{e['field'] or 'params'}: {e['error']}" for e in errors[:5])
            raise MCPError(
                INVALID_PARAMS, f"invalid params for {ctx.method}: {said}", {"errors": errors}
            ) from None
    return await call_next(ctx)


_PARAMS: dict[str, type[pydantic.BaseModel]] = {
    "resources/read": types.ReadResourceRequestParams,
    "resources/subscribe": types.SubscribeRequestParams,
    "resources/unsubscribe": types.UnsubscribeRequestParams,
    "prompts/get": types.GetPromptRequestParams,
    "completion/complete": types.CompleteRequestParams,
    "logging/setLevel": types.SetLevelRequestParams,
}
"""The params each method takes, checked here to say which field is wrong (tools/call: above)."""
_HANDSHAKE_ONLY = frozenset({"logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


def _suggesting(server: Server[Any]) -> ServerMiddleware[Any]:
    """Middleware: a method the server does not serve is answered -32601 as before, its message naming
    the closest methods it does serve (``tool/call``: did you mean 'tools/call'?); ``data`` stays the
    method sent, as the SDK gives it."""

    async def suggest(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            return await call_next(ctx)
        except MCPError as exc:
            if exc.error.code != METHOD_NOT_FOUND or exc.error.data != ctx.method:
                raise
            served = [m for m in SPEC_CLIENT_METHODS if m == "initialize" or server.get_request_handler(m)]
            hint = did_you_mean(close_matches(str(ctx.method), sorted(served)))
            if hint is None:
                raise
            raise MCPError(
                METHOD_NOT_FOUND, f"Method not found: {ctx.method!r}; {hint}", ctx.method
            ) from None

    return suggest


def build_server(bridge: Bridge, context_of: ContextOf) -> tuple[Server[Any], Notifier]:
    """A low-level SDK server that serves ``bridge``'s tools to the caller ``context_of`` finds.

    The :class:`Notifier` tells its clients what changed upstream; run it while the server serves.
    """

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams
    ) -> HandlerResult:
        try:
            return bridge.list_tools(context_of(ctx).principal, params.cursor if params else None)
        except ProtocolError as exc:
            raise MCPError(exc.code, exc.message, exc.data) from exc

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> HandlerResult:
        token = CALL_EVENTS.set(call_events(ctx, notifier))
        try:
            return created_answer(await bridge.call_tool(context_of(ctx), ctx.params or {}))
        except ProtocolError as exc:
            raise MCPError(exc.code, exc.message, exc.data) from exc
        finally:
            CALL_EVENTS.reset(token)

    server = _Server(SERVER_NAME, version=server_version(), instructions=INSTRUCTIONS)
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    server.middleware.insert(0, _checked_call)
    server.middleware.insert(0, _suggesting(server))
    add_federation(server, bridge.hub, context_of)
    tasks = Tasks(bridge.hub, context_of)
    tasks.install(server)
    server.serves_tasks = tasks.served
    server.serves_task_extension = tasks.served_modern
    notifier = Notifier(bridge.hub, context_of)
    notifier.install(server)
    return server, notifier
