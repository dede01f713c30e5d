"""MCP over stdio, for desktop clients that start ``toolbridge mcp`` as a subprocess."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import mcp_types as types
import pydantic
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge.surfaces.mcp._bridge import Bridge, CallContext
from toolbridge.surfaces.mcp._server import build_server
from toolbridge.surfaces.mcp._wire import RequestIds, params_refusal

if TYPE_CHECKING:
    from anyio import AsyncFile

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
        stdin = await stack.enter_async_context(_stdin_lines())
        # The SDK writes stdout (keeping fd 1 off the wire); the lines are read and parsed here, where a
        # line is still text (see _reading), so the SDK's reader is given none.
        unread, write_stream = await stack.enter_async_context(
            stdio_server(cast("AsyncFile[str]", _no_lines()))
        )
        unread.close()
        read_stream = await stack.enter_async_context(_reading(stdin, write_stream))
        await server.run(read_stream, write_stream, server.create_initialization_options())


class _Lines:
    """The lines a daemon thread reads from ``fd``, as an async iterator: a read that only the client's
    next line or EOF ends holds no task and no anyio worker thread, so a cancellation (SIGTERM) stops
    the server at once and the process exits with the thread still blocked. (The SDK reads stdin in
    anyio's worker threads: a cancellation waited for the client's next line, and the process for the
    thread.)"""

    def __init__(self, fd: int) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](0)
        self._token = anyio.lowlevel.current_token()
        threading.Thread(target=self._read, args=(fd,), name="toolbridge stdin", daemon=True).start()

    def _read(self, fd: int) -> None:
        try:
            with open(fd, encoding="utf-8", errors="replace", closefd=False) as source:
                for line in source:
                    anyio.from_thread.run(self._send.send, line, token=self._token)
            anyio.from_thread.run_sync(self._send.close, token=self._token)
        except (anyio.BrokenResourceError, RuntimeError):
            return  # the server stopped reading (closed, or its event loop is gone)

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._receive.close()


def _copy_of_stdin() -> int:
    """A descriptor of stdin's pipe above the standard three, not inherited by child processes."""
    if sys.platform == "win32":
        return os.dup(0)  # (not inheritable)
    import fcntl

    return fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)


@asynccontextmanager
async def _stdin_lines() -> AsyncIterator[_Lines]:
    """stdin's lines (:class:`_Lines`); meanwhile fd 0 points at the null device, as the SDK does, so
    that tools and child processes read EOF, not the protocol. fd 0 is restored on exit."""
    wire = _copy_of_stdin()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    lines = _Lines(wire)
    try:
        yield lines
    finally:
        lines.close()
        os.dup2(wire, 0)  # (wire stays open: the thread may still be reading it)


async def _no_lines() -> AsyncIterator[str]:
    return
    yield  # (an async generator without lines)


@asynccontextmanager
async def _reading(
    lines: _Lines, out: MemoryObjectSendStream[SessionMessage]
) -> AsyncIterator[MemoryObjectReceiveStream[SessionMessage]]:
    """The messages of ``lines``; each line that is none is answered on ``out`` with its error, as over
    HTTP the same body is (the SDK's server dropped such lines without a word: a client waited forever)."""
    send, receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump() -> None:
        async with send:
            async for line in lines:
                item = _message_of(line)
                if isinstance(item, SessionMessage):
                    await send.send(item)
                else:
                    await out.send(SessionMessage(item))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        yield receive
        tg.cancel_scope.cancel()


def _message_of(line: str) -> SessionMessage | types.JSONRPCError:
    """The message of one line, or the error that answers it: params that are not an object are -32602
    with the request's id, as over HTTP (the SDK's parser made them -32600 with no id, and took
    ``"params": null`` for no params)."""
    refusal = params_refusal(line.encode())
    if refusal is not None:
        return types.JSONRPCError.model_validate_json(refusal)
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except pydantic.ValidationError as exc:
        return _error_for(exc)
    if _request_without_id(message):
        return _invalid_request(None)
    return SessionMessage(message)


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


def _request_without_id(message: types.JSONRPCMessage) -> bool:
    """A request method sent with no usable id: the SDK reads a message whose id is an object, a
    fraction, a boolean or null as a notification (dropping the id), and a request never answered
    leaves its client waiting (over HTTP the same body is -32600). MCP's notifications are all
    ``notifications/…``."""
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
