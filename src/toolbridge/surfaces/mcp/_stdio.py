"""MCP over stdio, for desktop clients that start ``toolbridge mcp`` as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
import pydantic
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
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
        lines, write_stream = await stack.enter_async_context(stdio_server())
        read_stream = await stack.enter_async_context(_answering_bad_lines(lines, write_stream))
        await server.run(read_stream, write_stream, server.create_initialization_options())


Incoming = SessionMessage | Exception


@asynccontextmanager
async def _answering_bad_lines(
    lines: MemoryObjectReceiveStream[Incoming], out: MemoryObjectSendStream[SessionMessage]
) -> AsyncIterator[MemoryObjectReceiveStream[Incoming]]:
    """The messages of ``lines``, each line that is none answered on ``out``: the SDK's server drops
    them without a word, over HTTP the same body gets its error, and a client would wait forever."""
    send, receive = anyio.create_memory_object_stream[Incoming](0)

    async def pump() -> None:
        async with lines, send:
            async for item in lines:
                if isinstance(item, pydantic.ValidationError):
                    await out.send(SessionMessage(_error_for(item)))
                elif _request_without_id(item):
                    await out.send(SessionMessage(_invalid_request(None)))
                else:
                    await send.send(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        yield receive
        tg.cancel_scope.cancel()


def _error_for(exc: pydantic.ValidationError) -> types.JSONRPCError:
    """-32700 for a line that is not JSON, -32600 (with the request's id when it has a usable one) for
    JSON that is not one JSON-RPC 2.0 message."""
    errors = exc.errors()
    if any(e["type"] == "json_invalid" for e in errors):
        where = next((e.get("ctx", {}).get("error") for e in errors if e["type"] == "json_invalid"), None)
        detail = f": {where}" if where else ""
        return types.JSONRPCError(
            jsonrpc="2.0",
            id=None,
            error=types.ErrorData(
                code=types.PARSE_ERROR,
                message=f"Parse error{detail}; send one JSON-RPC message per line, as JSON",
            ),
        )
    found = [e["input"] for e in errors if isinstance(e.get("input"), dict)]
    given = found[0].get("id") if found else None
    usable = isinstance(given, str | int) and not isinstance(given, bool)
    return _invalid_request(given if usable else None)


def _request_without_id(item: Incoming) -> bool:
    """A request method sent with no usable id: the SDK reads a message whose id is an object, a
    fraction, a boolean or null as a notification (dropping the id), and a request never answered
    leaves its client waiting (over HTTP the same body is -32600). MCP's notifications are all
    ``notifications/…``."""
    message = item.message if isinstance(item, SessionMessage) else None
    return isinstance(message, types.JSONRPCNotification) and not message.method.startswith("notifications/")


def _invalid_request(request_id: str | int | None) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=types.ErrorData(
            code=types.INVALID_REQUEST,
            message='Invalid Request: send one JSON-RPC 2.0 message object per line ({"jsonrpc": "2.0", '
            '"id": 1, "method": "tools/list"}; an id is a string or an integer); batches are not accepted',
        ),
    )
