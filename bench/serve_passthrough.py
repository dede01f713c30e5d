"""The physical floor of a Python HTTP proxy on this machine: uvloop + httptools, raw forwarding.

``serve_passthrough.py PORT UPSTREAM_PORT``: every client connection on 127.0.0.1:PORT gets its own
keep-alive connection to 127.0.0.1:UPSTREAM_PORT. A request is parsed by httptools until it is complete
(the least an HTTP proxy must know: where a message ends), then its bytes go upstream unchanged; the
answer's bytes are relayed back as they arrive. No routing, no auth, no audit, no JSON, no headers
rewritten. What toolbridge's gateway costs above this is the cost of what it does per call.

Used by bench/openapi_call.py and bench/mcp_proxy.py (target ``passthrough``).
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """The proxy's connection to the upstream: relays answer bytes to the client as they come."""

    def __init__(self, client: asyncio.BaseTransport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's class

    def data_received(self, data: bytes) -> None:
        self.client.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Inbound(asyncio.Protocol):
    """One client connection: requests parsed for their end, then forwarded as bytes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.pending: list[bytes] = []
        self.ready: list[bytes] = []
        self.upstream: Upstream | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's class
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(lambda: Upstream(transport), "127.0.0.1", self.upstream_port)
        loop.create_task(connecting).add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[tuple[asyncio.BaseTransport, Upstream]]) -> None:
        if task.exception() is not None:
            assert self.transport is not None
            self.transport.close()
            return
        self.upstream = task.result()[1]
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.pending.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_complete(self) -> None:
        self.ready.append(b"".join(self.pending))
        self.pending.clear()
        self._flush()

    def _flush(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None and self.ready:
            self.upstream.transport.write(b"".join(self.ready))
            self.ready.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Inbound(upstream_port), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2])))
