"""MCP over stdio, for desktop clients that start ``toolbridge mcp`` as a subprocess."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge.surfaces.mcp._bridge import Bridge, CallContext
from toolbridge.surfaces.mcp._server import build_server
from toolbridge.surfaces.mcp._wire import RequestIds

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = ["serve_stdio"]


async def serve_stdio(hub: Hub, principal: Principal) -> None:
    """Serve ``hub``'s tools, as ``principal``, over this process's stdin and stdout until stdin closes.

    Both protocol eras are served (the client's first request decides). The hub is started here
    unless it is already running. Nothing else may write to stdout while this runs.
    """

    request_ids = RequestIds()

    def caller(ctx: ServerRequestContext[Any, Any]) -> CallContext:
        return CallContext(principal, request_ids.new(), ctx.protocol_version in MODERN_PROTOCOL_VERSIONS)

    server, notifier = build_server(Bridge(hub), caller)
    async with AsyncExitStack() as stack:
        if not hub.running:
            await stack.enter_async_context(hub)
        await stack.enter_async_context(notifier.running())
        read_stream, write_stream = await stack.enter_async_context(stdio_server())
        await server.run(read_stream, write_stream, server.create_initialization_options())
