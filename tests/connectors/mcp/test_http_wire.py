"""The streamable-HTTP channel's HTTP/1.1 on raw sockets: framing, keep-alive reuse and refusals, on both
httpx2's client over httpcore (``fast_path: false``, and with a proxy) and the default fast path
(toolbridge's own HTTP/1.1)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbridge.connectors._fastpath import _Connection
from toolbridge.connectors.mcp import HttpServer
from toolbridge.connectors.mcp._http import HttpChannel
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["httpx2", "fast-path"])
def fast(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


Answer = Callable[[dict[str, Any], anyio.abc.SocketStream], Awaitable[bool]]
"""Writes the answer to one request; returns whether to keep the connection open."""


@dataclass
class Script:
    answer: Answer
    connections: int = 0
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        async with client:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        buffer += await client.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                line, *lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
                size = int(headers.get("content-length", "0"))
                while len(buffer) < size:
                    buffer += await client.receive()
                body, buffer = buffer[:size], buffer[size:]
                message = json.loads(body) if body else {}
                self.requests.append((line, headers, message))
                if not await self.answer(message, client):
                    return


@asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[tuple[str, Script]]:
    script = Script(answer)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, script.handle)
        try:
            yield f"http://127.0.0.1:{port}/mcp", script
        finally:
            tg.cancel_scope.cancel()


def result(message: dict[str, Any], text: str = "ok") -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"text": text}}).encode()


def ping(n: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": n, "method": "ping"}


async def ignore(_message: dict[str, Any]) -> None:
    return None


@asynccontextmanager
async def channel(url: str, fast: bool, **server: Any) -> AsyncIterator[HttpChannel]:
    chan = HttpChannel(HttpServer(url=url, fast_path=fast, **server), ignore)
    await chan.start()
    try:
        yield chan
    finally:
        await chan.aclose()


async def test_json_answers_reuse_one_keep_alive_connection(fast: bool) -> None:
    async def answer(message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        body = result(message)
        await client.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        await client.send(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return True

    async with serving(answer) as (url, script), channel(url, fast, headers={"X-Team": "blue"}) as chan:
        for n in range(3):
            assert (await chan.request(ping(n), {"mcp-protocol-version": "2025-11-25"}))["result"] == {
                "text": "ok"
            }
    assert script.connections == 1
    line, headers, _ = script.requests[0]
    assert line == "POST /mcp HTTP/1.1"
    assert headers["x-team"] == "blue" and headers["mcp-protocol-version"] == "2025-11-25"


async def test_a_chunked_event_stream_split_anywhere_is_read_whole(fast: bool) -> None:
    notes: list[dict[str, Any]] = []

    async def on_message(message: dict[str, Any]) -> None:
        notes.append(message)

    async def answer(message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"p": 1}})
        events = f"event: message\ndata: {note}\n\n".encode() + b"data: " + result(message, "streamed")
        events += b"\r\n\r\n"
        chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (events[:7], events[7:]))
        wire = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"mcp-session-id: s-1\r\n\r\n" + chunks + b"0\r\ntrailer: x\r\n\r\n"
        )
        for i in range(0, len(wire), 5):  # five bytes at a time: every boundary falls mid-token somewhere
            await client.send(wire[i : i + 5])
            await anyio.lowlevel.checkpoint()
        return True

    async with serving(answer) as (url, script):
        chan = HttpChannel(HttpServer(url=url, fast_path=fast), on_message)
        await chan.start()
        try:
            assert (await chan.request(ping(), {}))["result"] == {"text": "streamed"}
            assert chan.session_id == "s-1"
            assert (await chan.request(ping(2), {}))["result"] == {"text": "streamed"}
        finally:
            chan.forget_session()
            await chan.aclose()
    assert notes == [{"jsonrpc": "2.0", "method": "notifications/progress", "params": {"p": 1}}] * 2
    assert script.connections == 1
    assert script.requests[1][1]["mcp-session-id"] == "s-1"


async def test_connection_close_and_unframed_answers_are_not_reused(fast: bool) -> None:
    async def answer(message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        body = result(message)
        if message["id"] == 1:  # an informational answer first, then one that closes
            head = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nconnection: close\r\n"
            await client.send(head + b"content-length: %d\r\n\r\n%s" % (len(body), body))
            return False
        await client.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + body)
        return False  # no length: the body ends with the connection

    async with serving(answer) as (url, script), channel(url, fast) as chan:
        assert (await chan.request(ping(1), {}))["result"] == {"text": "ok"}
        assert (await chan.request(ping(2), {}))["result"] == {"text": "ok"}
        assert (await chan.request(ping(3), {}))["result"] == {"text": "ok"}
    assert script.connections == 3


async def test_an_idle_connection_the_server_closed_is_replaced_once(fast: bool) -> None:
    async def answer(message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        body = result(message)
        await client.send(f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)
        return False  # keep-alive promised, but the server drops the connection after each answer

    async with serving(answer) as (url, script), channel(url, fast) as chan:
        assert (await chan.request(ping(1), {}))["result"] == {"text": "ok"}
        await anyio.sleep(0.05)
        assert (await chan.request(ping(2), {}))["result"] == {"text": "ok"}
    assert script.connections == 2 and len(script.requests) == 2


@pytest.mark.parametrize(
    "wire",
    [
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: header\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"jsonrpc"',
    ],
)
async def test_malformed_or_cut_answers_are_unavailable_and_sent(wire: bytes, fast: bool) -> None:
    async def answer(_message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        await client.send(wire)
        return False

    async with serving(answer) as (url, _), channel(url, fast) as chan:
        with pytest.raises(UpstreamUnavailable) as info:
            await chan.request(ping(), {})
    assert info.value.sent


async def test_header_values_that_could_split_the_request_are_refused(fast: bool) -> None:
    async def answer(message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        raise AssertionError("nothing may be sent")

    async with serving(answer) as (url, script):
        with pytest.raises(ConfigurationError, match="x-evil"):
            HttpChannel(HttpServer(url=url, headers={"X-Evil": "a\r\nx-injected: 1"}, fast_path=fast), ignore)
        async with channel(url, fast) as chan:
            with pytest.raises(UpstreamUnavailable, match="mcp-name") as info:
                await chan.request(ping(), {"mcp-name": "tool\r\n\r\nGET / HTTP/1.1"})
            assert not info.value.sent
    assert script.requests == []


class Fragments(anyio.abc.ByteStream):
    """A byte stream that delivers scripted fragments, then ends."""

    def __init__(self, fragments: list[bytes]) -> None:
        self.fragments = fragments

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.fragments:
            raise anyio.EndOfStream
        return self.fragments.pop(0)

    async def send(self, item: bytes) -> None:
        pass

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(
    st.binary(max_size=3000),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
    st.booleans(),
)
def test_any_framing_and_fragmentation_yields_the_body_exactly(
    body: bytes, chunk_cuts: list[int], wire_cuts: list[int], chunked: bool
) -> None:
    if chunked:
        pieces = split(body, chunk_cuts)
        framed = b"transfer-encoding: chunked\r\n\r\n"
        framed += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        framed = b"content-length: %d\r\n\r\n%s" % (len(body), body)
    wire = b"HTTP/1.1 200 OK\r\n" + framed

    async def read() -> tuple[bytes, bool]:
        conn = _Connection(Fragments(split(wire, wire_cuts)))
        await conn.send(b"")
        await conn.head()
        got = b""
        while (piece := await conn.piece()) is not None:
            assert piece
            got += piece
        return got, conn.reusable()

    assert anyio.run(read) == (body, True)


async def test_a_redirect_is_named_with_its_origin_not_followed(fast: bool) -> None:
    """A 302 was "ended its answer without a response to 'ping'": say it redirected, and where (origin)."""

    async def answer(_message: dict[str, Any], client: anyio.abc.SocketStream) -> bool:
        location = b"https://elsewhere.test:8443/mcp?token=s3cr3t"
        await client.send(b"HTTP/1.1 302 Found\r\nlocation: %s\r\ncontent-length: 0\r\n\r\n" % location)
        return True

    async with serving(answer) as (url, script), channel(url, fast) as chan:
        with pytest.raises(UpstreamStatusError) as info:
            await chan.request(ping(), {})
    message = str(info.value)
    assert "redirected (HTTP 302) to https://elsewhere.test:8443" in message and "not follow" in message
    assert "s3cr3t" not in message and "/mcp?" not in message
    assert len(script.requests) == 1, "the redirect was not followed"
