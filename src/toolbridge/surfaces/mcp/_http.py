"""MCP over streamable HTTP: :class:`McpSurface`, an ASGI app for both protocol eras.

The 2025-11-25 era (``initialize`` handshake, ``Mcp-Session-Id``) and the 2026-07-28 stateless era
(one self-contained POST per request) are both served by the SDK's session managers, behind our
:class:`Gate`. Stateless ``tools/list`` and ``tools/call`` may take the lean path (see ``_lean``), and
so may a plain ``tools/call`` on an established session (see ``_lean_session``).

Handshake-era sessions answer each POST with JSON; their notifications (list changes, upstream log
messages, resource updates) travel on the session's GET stream. Stateless-era requests the lean path
leaves are answered in the SDK's SSE mode, which stays JSON unless the handler emits something: a
``tools/call`` with a ``progressToken`` streams its progress, ``subscriptions/listen`` its events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from toolbridge._trace import incoming
from toolbridge.surfaces.mcp._bridge import Bridge, CallContext, aliases
from toolbridge.surfaces.mcp._gate import CURRENT_PRINCIPAL, Gate, OriginPolicy, request_info
from toolbridge.surfaces.mcp._lean import LeanPath
from toolbridge.surfaces.mcp._lean_session import SessionPath
from toolbridge.surfaces.mcp._server import build_server
from toolbridge.surfaces.mcp._wire import INTERNAL_ERROR

if TYPE_CHECKING:
    from types import TracebackType

    from toolbridge import Hub, Principal

__all__ = ["McpSurface"]


class McpSurface:
    """The MCP endpoint of a hub, as an ASGI app (:attr:`asgi_app`) with an explicit lifetime.

    Use it as ``async with McpSurface(hub) as surface:`` (in the server's lifespan) and mount
    ``surface.asgi_app`` — :meth:`routes` gives routes for both ``/mcp`` and ``/mcp/``.

    ``allowed_origins`` lists the browser origins (``https://app.example.com``) allowed besides
    loopback pages; ``"*"`` allows any. ``anonymous_principal`` answers requests that carry no key (for
    local, single-user servers and protocol test suites); None, the default, refuses them with 401.
    ``lean`` serves stateless-era ``tools/list`` and ``tools/call``, and plain session ``tools/call``,
    without the SDK's generic dispatcher (same wire result, a fraction of the cost).
    ``tools_page_size`` tools make one
    ``tools/list`` page (``nextCursor`` for the rest).
    """

    def __init__(
        self,
        hub: Hub,
        *,
        allowed_origins: Sequence[str] = (),
        max_body_bytes: int = 1_048_576,
        anonymous_principal: Principal | None = None,
        lean: bool = True,
        tools_page_size: int = 500,
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be a positive number of bytes")
        self.hub = hub
        bridge = Bridge(hub, page_size=tools_page_size)
        server, self.notifier = build_server(bridge, _http_caller)
        server.get_tool_input_schema = lambda name: _visible_schema(bridge, name)
        self._manager = StreamableHTTPSessionManager(
            server, json_response=True, max_request_body_size=max_body_bytes
        )
        self._modern = StreamableHTTPSessionManager(
            server, json_response=False, max_request_body_size=max_body_bytes
        )
        self.asgi_app: ASGIApp = Gate(
            self._dispatch,
            hub,
            origins=OriginPolicy(allowed_origins),
            max_body_bytes=max_body_bytes,
            anonymous=anonymous_principal,
            lean=LeanPath(bridge, server, SessionPath(bridge, server, self._manager, self.notifier))
            if lean
            else None,
        )
        self._stack: AsyncExitStack | None = None

    def routes(self, path: str = "/mcp") -> list[BaseRoute]:
        """Routes serving the endpoint at ``path`` and ``path/`` (a Mount alone would redirect ``/mcp``)."""
        path = path.rstrip("/")
        return [Route(path, self.asgi_app), Route(path + "/", self.asgi_app)]

    async def __aenter__(self) -> McpSurface:
        if self._stack is not None:
            raise RuntimeError("this McpSurface is already running")
        aliases(self.hub)  # MCP names of unprefixed upstreams must not collide: refuse to start
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self._manager.run())
            await stack.enter_async_context(self._modern.run())
            await stack.enter_async_context(self.notifier.running())
        except BaseException:  # a failed or cancelled start: undo what started, then re-raise
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stateless-era requests to the streaming manager; the handshake era to the JSON one."""
        version = None
        session_id = None
        for name, value in scope["headers"]:
            if name == b"mcp-protocol-version":
                version = value.decode("latin-1")
            elif name == b"mcp-session-id":
                session_id = value.decode("latin-1")
        if version is not None and version in MODERN_PROTOCOL_VERSIONS:
            await self._modern.handle_request(scope, receive, send)
            return
        info = request_info(scope)
        if scope["method"] == "DELETE" and session_id and info is not None:
            self.notifier.forget(f"http:{session_id}", by=info.principal)  # only its owner ends a session
        if scope["method"] == "GET":
            scope = _without_last_event_id(scope)
        await self._manager.handle_request(scope, receive, send)


def _without_last_event_id(scope: Scope) -> Scope:
    """A session's GET stream without ``Last-Event-ID``: toolbridge gives its SSE events no ids (it keeps
    no event store), so there is nothing to resume, and the SDK's transport, asked to replay without an
    event store, sent no answer at all (a 500). The stream opens as a new one, as the TypeScript SDK's
    server does without an event store."""
    headers = scope["headers"]
    if not any(name == b"last-event-id" for name, _ in headers):
        return scope
    return {**scope, "headers": [(name, value) for name, value in headers if name != b"last-event-id"]}


def _http_caller(ctx: ServerRequestContext[Any, Any]) -> CallContext:
    request = ctx.request
    scope = request.scope if isinstance(request, Request) else {}
    info = request_info(scope)
    if info is None:  # only reachable if the SDK app is served without the Gate
        raise MCPError(INTERNAL_ERROR, "the MCP request reached toolbridge without its authentication")
    modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
    # the SDK runs the handler in its own task, outside the request's trace context: taken from its headers
    return CallContext(info.principal, info.request_id, modern, incoming(scope["headers"]))


def _visible_schema(bridge: Bridge, name: str) -> Mapping[str, Any] | None:
    principal = CURRENT_PRINCIPAL.get()
    return None if principal is None else bridge.input_schema(principal, name)
