"""MCP over stdio, for desktop clients that start ``toolbridge mcp`` as a subprocess."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import mcp_types as types
import pydantic
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http import REQUEST_CANCELLED
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge.surfaces.mcp._batch import BATCH_VERSION, batch_of, batch_refusal, in_batch_refusal
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
        batches = _Batches(write_stream)
        to_stdout = await stack.enter_async_context(batches.passing())
        read_stream = await stack.enter_async_context(_reading(stdin, batches, hub.limits.call_timeout))
        await server.run(read_stream, to_stdout, server.create_initialization_options())


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
    lines: _Lines, batches: _Batches, drain: float
) -> AsyncIterator[MemoryObjectReceiveStream[SessionMessage]]:
    """The messages of ``lines``; each line that is none is answered with its error, as over HTTP the same
    body is (the SDK's server dropped such lines without a word: a client waited forever). A line that is
    a batch is served as its messages on a 2025-03-26 connection (see ``_batch``), refused elsewhere.

    At the end of the input the server is told only once the requests read before it are answered (up to
    ``drain`` seconds): told at once, it cancelled them, and ``printf '…tools/call…' | toolbridge mcp``
    got "-32000 Connection closed", or nothing, for a call that would have succeeded."""
    send, receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def pump() -> None:
        async with send:
            async for line in lines:
                elements = batch_of(line.encode())
                if elements is None:
                    item = _message_of(line)
                    if isinstance(item, SessionMessage):
                        await batches.note(item.message)
                        await send.send(item)
                    else:
                        await batches.answer(item)
                elif not elements or batches.version != BATCH_VERSION:
                    await batches.answer(
                        types.JSONRPCError.model_validate(batch_refusal(elements, batches.version))
                    )
                else:
                    for item in await batches.open([_element_of(e) for e in elements]):
                        await send.send(item)
            await batches.answered(drain)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        yield receive
        tg.cancel_scope.cancel()


def _element_of(element: Any) -> SessionMessage | types.JSONRPCError:
    refused = in_batch_refusal(element)
    if refused is not None:
        return types.JSONRPCError.model_validate(refused)
    return _message_of(json.dumps(element))


class _BatchLine(pydantic.RootModel[list[types.JSONRPCResponse | types.JSONRPCError]]):
    """A batch's answers as one message for the SDK's stdout writer, which writes each message's
    ``model_dump_json(by_alias=True, exclude_unset=True)`` as a line: here a JSON array."""


@dataclass(slots=True)
class _Batch:
    answers: list[types.JSONRPCResponse | types.JSONRPCError | None]
    waiting: dict[types.RequestId, int]
    """The ids of its requests still unanswered, and the places of their answers."""


class _Batches:
    """What goes to stdout. The server's answers to a batch's requests are held until the batch is
    answered whole, then written as one line, a JSON array in the batch's order; everything else passes
    at once. It also sees the version ``initialize`` negotiated (:attr:`version`)."""

    def __init__(self, out: MemoryObjectSendStream[SessionMessage]) -> None:
        self._out = out
        self.version: str | None = None
        self._initialize: types.RequestId | None = None
        self._waiting: dict[types.RequestId, _Batch] = {}
        self._unanswered: set[types.RequestId] = set()
        """The requests the server was given and has not answered (nor been told to cancel)."""
        self._progress = anyio.Event()

    @asynccontextmanager
    async def passing(self) -> AsyncIterator[MemoryObjectSendStream[SessionMessage]]:
        """The stream the server writes to, passed on until the server closes it."""
        send, receive = anyio.create_memory_object_stream[SessionMessage](0)

        async def pump() -> None:
            async with receive, self._out:
                async for item in receive:
                    await self._pass(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                yield send
            finally:
                send.close()

    async def note(self, message: types.JSONRPCMessage) -> None:
        """A message going to the server: its ``initialize`` is watched for the version it negotiates, and
        a cancellation answers a batch's request ``-32800`` (the server no longer answers it, and the
        batch would wait for ever; over HTTP the SDK answers such a request so)."""
        if isinstance(message, types.JSONRPCRequest):
            self._unanswered.add(message.id)
            if message.method == "initialize":
                self._initialize = message.id
        if not isinstance(message, types.JSONRPCNotification) or message.method != "notifications/cancelled":
            return
        request_id = (message.params or {}).get("requestId")
        if isinstance(request_id, str | int):
            self._settled(request_id)  # no answer comes to a request its client cancelled
        if not isinstance(request_id, str | int) or (batch := self._waiting.pop(request_id, None)) is None:
            return
        batch.answers[batch.waiting.pop(request_id)] = _cancelled(request_id)
        if not batch.waiting:
            await self._write(batch)

    async def answered(self, limit: float) -> None:
        """Return once every request the server was given is answered, or after ``limit`` seconds."""
        with anyio.move_on_after(limit):
            while self._unanswered:
                self._progress = anyio.Event()
                await self._progress.wait()

    def _settled(self, request_id: types.RequestId) -> None:
        self._unanswered.discard(request_id)
        self._progress.set()

    async def answer(self, error: types.JSONRPCError) -> None:
        await self._out.send(SessionMessage(error))

    async def open(self, items: list[SessionMessage | types.JSONRPCError]) -> list[SessionMessage]:
        """A batch's messages (or their errors): the messages to serve; the answers to its requests are
        held from now on (the batch is answered at once when it holds no request to serve)."""
        batch = _Batch([], {})
        serve: list[SessionMessage] = []
        for item in items:
            if isinstance(item, types.JSONRPCError):
                batch.answers.append(item)
                continue
            message = item.message
            if isinstance(message, types.JSONRPCRequest):
                if message.id in self._waiting or message.id in batch.waiting:
                    batch.answers.append(_id_in_use(message.id))
                    continue
                batch.waiting[message.id] = len(batch.answers)
                batch.answers.append(None)
            serve.append(item)
        self._waiting.update(dict.fromkeys(batch.waiting, batch))
        if not batch.waiting:
            await self._write(batch)
        for item in serve:
            await self.note(item.message)
        return serve

    async def _pass(self, item: SessionMessage) -> None:
        message = item.message
        if not isinstance(message, types.JSONRPCResponse | types.JSONRPCError) or message.id is None:
            await self._out.send(item)
            return
        self._settled(message.id)
        if isinstance(message, types.JSONRPCResponse) and message.id == self._initialize:
            found = message.result.get("protocolVersion")
            self.version = found if isinstance(found, str) else None
        batch = self._waiting.pop(message.id, None)
        if batch is None:
            await self._out.send(item)
            return
        batch.answers[batch.waiting.pop(message.id)] = message
        if not batch.waiting:
            await self._write(batch)

    async def _write(self, batch: _Batch) -> None:
        answers = [answer for answer in batch.answers if answer is not None]
        if answers:  # (a batch of notifications is not answered)
            await self._out.send(SessionMessage(cast("types.JSONRPCMessage", _BatchLine(answers))))


def _cancelled(request_id: types.RequestId) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=types.ErrorData(code=REQUEST_CANCELLED, message="Request cancelled"),
    )


def _id_in_use(request_id: types.RequestId) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=request_id,
        error=types.ErrorData(
            code=types.INVALID_REQUEST,
            message=f"Invalid Request: the id {request_id!r} belongs to a request still in flight; give each "
            "request an id of its own (a counter)",
        ),
    )


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
            '"id": 1, "method": "tools/list"}; an id is a string or an integer)',
        ),
    )
