"""A TCP (or TLS) connection as an anyio byte stream, on asyncio's own transport and protocol when the loop
is asyncio's (or uvloop).

anyio's socket stream takes a scheduling round of the event loop for every ``send`` (a checkpoint) and a
wake-up through its own event for every ``receive``; on this machine that was about half the CPU of a
whole keep-alive HTTP exchange of the fast path (bench/http_clients.py). Here a send is the transport's
``write`` (waiting only when the transport asks to pause writing) and a receive takes what the protocol
has buffered, waiting on one future only when nothing has arrived. Reading is paused while more than
:data:`_HIGH_WATER` bytes wait unread. On another anyio backend (trio), :func:`connect` returns anyio's
stream. Both connect the way ``anyio.connect_tcp`` does (``TCP_NODELAY``, the TLS server
name from ``host``), except that the addresses of a name are tried one after another.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any, cast

import anyio
import anyio.abc

__all__ = ["connect"]

_HIGH_WATER = 1 << 20


async def connect(
    host: str, port: int, ssl_context: ssl.SSLContext | None = None, *, read_timeout: float | None = None
) -> anyio.abc.ByteStream:
    """A connection to ``host:port``, over TLS when ``ssl_context`` is given. ``read_timeout``: a receive
    that waits longer for bytes raises ``TimeoutError`` (asyncio only; anyio's stream has none)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # another anyio backend
        loop = None
    if loop is None:
        if ssl_context is None:
            return await anyio.connect_tcp(host, port)
        return await anyio.connect_tcp(host, port, tls=True, ssl_context=ssl_context)
    # Addresses are tried one after another, as uvloop does (asyncio's happy eyeballs, in Python 3.11,
    # leaves the socket of an attempt cancelled mid-connect unclosed).
    _, protocol = await loop.create_connection(
        lambda: _Stream(loop, read_timeout),
        host,
        port,
        ssl=ssl_context,
        server_hostname=host if ssl_context is not None else None,
    )
    return protocol


class _Stream(asyncio.Protocol, anyio.abc.ByteStream):
    """Both ends of one connection: the protocol asyncio feeds, and the byte stream a reader awaits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None = None) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._closed = False
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None

    # -- the protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # (uvloop's are not asyncio.Transport's kind)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the byte stream -------------------------------------------------------------------------------

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._lost or self._transport is None or self._transport.is_closing():
            raise anyio.BrokenResourceError from self._error
        self._transport.write(item)
        if self._drain is not None:
            await asyncio.shield(self._drain)
            if self._lost:
                raise anyio.BrokenResourceError from self._error

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self._chunks:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._error is not None:
                raise anyio.BrokenResourceError from self._error
            if self._eof or self._lost:
                raise anyio.EndOfStream
            waiter = self._waiter = self._loop.create_future()
            timer = (
                None
                if self._read_timeout is None
                else self._loop.call_later(self._read_timeout, _late, waiter)
            )
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and self._transport is not None and not self._lost:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def send_eof(self) -> None:
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    async def aclose(self) -> None:
        """Close as anyio's stream closes: the transport asked to close, one round of the loop for it to
        do so, then closed at once (its socket is then closed even if the loop ends right after)."""
        self._closed = True
        self._wake()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
            await asyncio.sleep(0)
            transport.abort()

    async def abort(self) -> None:
        """Close at once, without a TLS goodbye (the socket is closed in the loop's next round)."""
        self._closed = True
        self._wake()
        if self._transport is not None:
            self._transport.abort()
            await asyncio.sleep(0)

    def pending(self) -> bool:
        """Whether anything arrived unasked (bytes, the end of the stream, a failure)."""
        return bool(self._chunks) or self._eof or self._lost

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        transport = self._transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return {}
        return {anyio.abc.SocketAttribute.raw_socket: lambda: sock}


def _late(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no bytes arrived within the read timeout"))
