"""A loopback TCP fault proxy that can stand in front of any upstream (Toxiproxy's core toxics).

    async with FaultProxy(upstream_port=8000) as proxy:      # listens on 127.0.0.1:proxy.port
        proxy.mode = ProxyMode(latency=0.2)                   # change the toxic at any time
        ...

Modes apply to connections opened after the change:

| field | effect |
|---|---|
| ``latency`` | each chunk upstream → client delayed by this many seconds |
| ``reset_peer`` | the request is forwarded, then the client connection is closed with no answer |
| ``timeout`` | the connection is accepted and nothing is ever forwarded |
| ``down`` | new connections are accepted and closed at once (nothing reaches the upstream) |
| ``limit_data`` | the connection closes after this many bytes of answer |
| ``bandwidth`` | answer bytes per second (trickle) |
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskGroup

__all__ = ["FaultProxy", "ProxyMode"]


@dataclass(frozen=True)
class ProxyMode:
    latency: float = 0.0
    reset_peer: bool = False
    timeout: bool = False
    down: bool = False
    limit_data: int | None = None
    bandwidth: int | None = None


class FaultProxy:
    def __init__(self, *, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = ProxyMode()
        self.port = 0
        self.connections = 0
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> FaultProxy:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(SocketAttribute.local_port)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(listener.serve, self._handle)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            self._tg = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, client: SocketStream) -> None:
        self.connections += 1
        mode = self.mode
        async with client:
            if mode.down:
                return
            if mode.timeout:
                await anyio.sleep_forever()
            async with await anyio.connect_tcp(*self.upstream) as upstream, anyio.create_task_group() as tg:
                tg.start_soon(self._forward_requests, client, upstream, mode, tg)
                await self._forward_answers(upstream, client, mode)
                tg.cancel_scope.cancel()

    async def _forward_requests(
        self, client: SocketStream, upstream: SocketStream, mode: ProxyMode, tg: TaskGroup
    ) -> None:
        try:
            async for chunk in client:
                await upstream.send(chunk)
                if mode.reset_peer:
                    await anyio.sleep(0.05)  # let the upstream act on it, then drop the client
                    await client.aclose()
                    tg.cancel_scope.cancel()
                    return
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            tg.cancel_scope.cancel()

    async def _forward_answers(self, upstream: SocketStream, client: SocketStream, mode: ProxyMode) -> None:
        sent = 0
        try:
            async for chunk in upstream:
                if mode.latency:
                    await anyio.sleep(mode.latency)
                if mode.limit_data is not None and sent + len(chunk) > mode.limit_data:
                    await client.send(chunk[: max(0, mode.limit_data - sent)])
                    return
                await self._send(client, chunk, mode.bandwidth)
                sent += len(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            return

    @staticmethod
    async def _send(client: SocketStream, chunk: bytes, bandwidth: int | None) -> None:
        if not bandwidth:
            await client.send(chunk)
            return
        step = max(1, bandwidth // 10)
        for i in range(0, len(chunk), step):
            await client.send(chunk[i : i + step])
            await anyio.sleep(step / bandwidth)
