"""A real HTTP/1.1 upstream on 127.0.0.1 whose every answer a test scripts, and which counts effects.

It speaks just enough HTTP to be driven by httpx2 over real sockets, so a test can produce what a
framework won't: a reset after the request was read, a hang, a malformed header. Writes (POST) apply
an effect once per Idempotency-Key, as Stripe-style APIs do.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketStream

__all__ = ["Reply", "Upstream", "running_upstream"]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: object = None
    reset: bool = False
    """Read the request, apply its effect, then close the connection without answering."""
    hang: float = 0.0
    """Read the request, then wait this long before answering."""


@dataclass
class Upstream:
    port: int
    script: deque[Reply] = field(default_factory=deque)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    effects: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, *replies: Reply) -> Upstream:
        self.script.extend(replies)
        return self

    @property
    def effect_count(self) -> int:
        return sum(self.effects.values())

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                while await self._one(stream):
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    async def _one(self, stream: SocketStream) -> bool:
        method, path, headers, body = await _read_request(stream)
        self.requests.append((method, path, headers, body))
        reply = self.script.popleft() if self.script else Reply()
        if method == "POST" and reply.status < 300:
            key = headers.get("idempotency-key") or f"anonymous-{len(self.requests)}"
            self.effects[key] = 1  # applied once per key, however often it arrives
        if reply.hang:
            await anyio.sleep(reply.hang)
        if reply.reset:
            return False
        payload = json.dumps(reply.body if reply.body is not None else {"ok": True}).encode()
        head = [
            f"HTTP/1.1 {reply.status} X",
            f"content-length: {len(payload)}",
            "content-type: application/json",
        ]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        await stream.send(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        return True


async def _read_request(stream: SocketStream) -> tuple[str, str, dict[str, str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive()
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += await stream.receive()
    return method, path, headers, rest[:length]


@asynccontextmanager
async def running_upstream(port: int = 0) -> AsyncIterator[Upstream]:
    """Serve a scripted upstream on 127.0.0.1 (``port`` 0: any free port) for the ``async with`` block."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    upstream = Upstream(port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, upstream.handle)
        try:
            yield upstream
        finally:
            tg.cancel_scope.cancel()
