"""A TLS handshake given up half-way: does the client close its socket?"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

from tests._patience import patience

__all__ = ["give_up_during_the_handshake"]


async def give_up_during_the_handshake(send: Callable[[str], Awaitable[None]]) -> None:
    """``send`` a request to a server that reads the client's hello and never answers it; cancel the
    request there, then wait for the client to hang up."""
    hello, ended = anyio.Event(), anyio.Event()

    async def stall(client: anyio.abc.SocketStream) -> None:
        async with client:
            await client.receive()
            hello.set()
            try:
                while await client.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                ended.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, stall)
        with anyio.CancelScope() as call:
            tg.start_soon(cancel_after, hello, call)
            await send(f"https://127.0.0.1:{port}")
        assert call.cancelled_caught
        with anyio.fail_after(patience(10)):  # the close arrives at once; the bound only ends a failure
            await ended.wait()
        tg.cancel_scope.cancel()


async def cancel_after(hello: anyio.Event, call: anyio.CancelScope) -> None:
    await hello.wait()
    call.cancel()
