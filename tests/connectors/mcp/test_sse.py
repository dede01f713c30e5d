"""Legacy HTTP+SSE upstreams (2024-11-05): server-everything in ``sse`` mode, and a scripted raw server
for what a real one does not do on demand (an endpoint on another origin, no endpoint, broken events)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from anyio.abc import SocketAttribute
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.sse import sse_client

from tests._patience import patience
from tests.e2e.test_mcp_federation import EVERYTHING_CALLS, _same, comparable, namespaced
from toolbridge import Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector, _sse
from toolbridge.connectors.mcp._channel import Message, SessionExpired
from toolbridge.connectors.mcp._sse import SseChannel
from toolbridge.errors import (
    ConfigurationError,
    OutcomeUnknown,
    ToolExecutionError,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.settings import parse_settings

from .conftest import NodeHttp, hub_with

pytestmark = pytest.mark.anyio
LOCAL = Principal.local()


# -- against server-everything in sse mode -----------------------------------------------------------


@pytest.mark.node
async def test_every_tool_over_sse_gives_what_a_direct_sse_client_gets(everything_sse: NodeHttp) -> None:
    connector = McpConnector("legacy", HttpServer(url=everything_sse.url, transport="sse"))
    proxied: list[dict[str, Any]] = []
    async with hub_with(connector) as hub:
        listed = {t.name.removeprefix("legacy.") for t in hub.list_tools(LOCAL)}
        asking = {"get-roots-list", "trigger-elicitation-request", "trigger-sampling-request"}
        asking.add("trigger-url-elicitation")  # offered because toolbridge declares what it relays
        assert listed == {name for name, _ in EVERYTHING_CALLS} | asking  # every tool the server has
        for name, arguments in EVERYTHING_CALLS:
            try:
                result = await hub.call(LOCAL, f"legacy.{name}", arguments)
            except ToolExecutionError:
                proxied.append({"isError": True})
                continue
            proxied.append(dict(result.value))
        assert connector.sessions_opened == 1

    everything_sse.restart()  # a fresh server, as toolbridge's session found it
    async with Client(sse_client(everything_sse.url)) as direct:
        direct_results = [comparable(await direct.call_tool(n, a)) for n, a in EVERYTHING_CALLS]
    for (name, _), mine, theirs in zip(EVERYTHING_CALLS, proxied, direct_results, strict=True):
        theirs.pop("resultType", None)  # the SDK's own field, not the server's
        if not theirs.get("isError"):
            theirs.pop("isError", None)
        assert _same(mine, namespaced(theirs, "legacy")), (name, mine, theirs)


@pytest.mark.node
async def test_auto_falls_back_to_sse_and_remembers_it(everything_sse: NodeHttp) -> None:
    connector = McpConnector("legacy", everything_sse.server)  # transport: auto
    assert connector.transport == "auto"
    async with hub_with(connector) as hub:
        assert connector.transport == "sse"
        result = await hub.call(LOCAL, "legacy.get-sum", {"a": 40, "b": 2})
        assert result.value["content"][0]["text"] == "The sum of 40 and 2 is 42."
        everything_sse.restart()  # the stream drops; the next session goes straight to SSE
        with anyio.fail_after(patience(10)):
            while connector.connected:  # noqa: ASYNC110 - bounded poll
                await anyio.sleep(0.01)  # until the connector has seen the stream end
        result = await hub.call(LOCAL, "legacy.echo", {"message": "again"})
        assert result.value["content"][0]["text"] == "Echo: again"
        assert connector.sessions_opened == 2
        assert connector.transport == "sse"


@pytest.mark.node
async def test_auto_keeps_streamable_http_for_a_modern_server(everything_http: NodeHttp) -> None:
    connector = McpConnector("modern", everything_http.server)
    async with hub_with(connector) as hub:
        assert connector.transport == "streamable-http"
        result = await hub.call(LOCAL, "modern.echo", {"message": "hi"})
        assert result.value["content"][0]["text"] == "Echo: hi"


@pytest.mark.node
async def test_sse_upstream_killed_mid_call_fails_it_and_the_next_call_reconnects(
    everything_sse: NodeHttp,
) -> None:
    connector = McpConnector("legacy", HttpServer(url=everything_sse.url, transport="sse"))
    async with hub_with(connector) as hub:
        errors: list[Exception] = []

        async def long_call() -> None:
            try:
                await hub.call(LOCAL, "legacy.trigger-long-running-operation", {"duration": 30, "steps": 30})
            except (OutcomeUnknown, UpstreamUnavailable) as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            channel = connector._session.channel  # type: ignore[union-attr]
            with anyio.fail_after(patience(10)):
                while not channel._pending:  # type: ignore[attr-defined]  # noqa: ASYNC110 - bounded poll
                    await anyio.sleep(0.01)  # until the request is in flight
            everything_sse.stop()
        assert len(errors) == 1
        cause = errors[0] if isinstance(errors[0], UpstreamUnavailable) else errors[0].__cause__
        assert isinstance(cause, UpstreamUnavailable) and cause.sent
        # the stream's end, or (when the server dies before answering the POST itself) the POST's
        assert "stopped answering" in str(cause) or "disconnected" in str(cause)
        everything_sse.start()
        result = await hub.call(LOCAL, "legacy.echo", {"message": "back"})
        assert result.value["content"][0]["text"] == "Echo: back"
        assert connector.sessions_opened == 2


@pytest.mark.node
async def test_a_hanging_sse_upstream_hits_the_deadline_and_the_session_survives(
    everything_sse: NodeHttp,
) -> None:
    connector = McpConnector("legacy", HttpServer(url=everything_sse.url, transport="sse"))
    async with hub_with(connector, call_timeout=patience(1.0)) as hub:
        with pytest.raises(OutcomeUnknown, match="call deadline"):  # not read-only: it may yet take effect
            await hub.call(LOCAL, "legacy.trigger-long-running-operation", {"duration": 30, "steps": 3})
        result = await hub.call(LOCAL, "legacy.echo", {"message": "after"})
        assert result.value["content"][0]["text"] == "Echo: after"
        assert connector.sessions_opened == 1


# -- a scripted raw server ----------------------------------------------------------------------------

Script = Callable[[Message, Callable[[bytes], Awaitable[None]]], Awaitable[None]]


class RawSse:
    """GET /sse answers ``head`` bytes then keeps the stream; each POST is 202 and runs ``on_post``
    (or, given ``answer``, gets the raw HTTP response it makes of the message)."""

    def __init__(
        self,
        head: bytes,
        on_post: Script | None = None,
        *,
        content_type: str = "text/event-stream",
        close: bool = False,
        answer: Callable[[Message], bytes] | None = None,
    ) -> None:
        self.head = head
        self.answer = answer
        self.close = close
        self.on_post = on_post
        self.content_type = content_type
        self.posts: list[Message] = []
        self.post_headers: list[dict[str, str]] = []
        self.gets: list[dict[str, str]] = []
        self.send_event: anyio.abc.ObjectSendStream[bytes] | None = None

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await client.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if lines[0].startswith("GET"):
                self.gets.append(headers)
                await self._stream(client)
                return
            while len(body) < int(headers.get("content-length", "0")):
                body += await client.receive()
            self.posts.append(json.loads(body))
            self.post_headers.append(headers)
            if self.answer is not None:
                await client.send(self.answer(self.posts[-1]))
                return
            await client.send(b"HTTP/1.1 202 Accepted\r\ncontent-length: 8\r\n\r\nAccepted")
            if self.on_post is not None and self.send_event is not None:
                await self.on_post(self.posts[-1], self.send_event.send)

    async def _stream(self, client: anyio.abc.SocketStream) -> None:
        status = f"HTTP/1.1 200 OK\r\ncontent-type: {self.content_type}\r\n\r\n"
        await client.send(status.encode() + self.head)
        if self.close:
            return
        send, receive = anyio.create_memory_object_stream[bytes](16)
        self.send_event = send
        async with send, receive:
            async for chunk in receive:
                await client.send(chunk)


@asynccontextmanager
async def raw(server: RawSse) -> AsyncIterator[str]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.handle)
        yield f"http://127.0.0.1:{port}/sse"
        tg.cancel_scope.cancel()


async def ignore(_message: Message) -> None:
    return None


@asynccontextmanager
async def channel_to(url: str, **headers: str) -> AsyncIterator[SseChannel]:
    async with anyio.create_task_group() as tg:
        channel = SseChannel(HttpServer(url=url, headers=headers, transport="sse"), tg, ignore)
        try:
            with anyio.fail_after(patience(20)):
                await channel.start()
            yield channel
        finally:
            await channel.aclose()
            tg.cancel_scope.cancel()


async def refusal(server: RawSse) -> UpstreamUnavailable:
    """The error starting a channel to ``server`` raises."""
    async with raw(server) as url, anyio.create_task_group() as tg:
        channel = SseChannel(HttpServer(url=url, transport="sse"), tg, ignore)
        try:
            with anyio.fail_after(patience(20)):
                await channel.start()
        except UpstreamUnavailable as exc:
            return exc
        finally:
            await channel.aclose()
    raise AssertionError("the channel started")


async def test_an_endpoint_on_another_origin_is_refused() -> None:
    server = RawSse(b"event: endpoint\ndata: http://127.0.0.2:9/messages?sessionId=1\n\n")
    refused = await refusal(server)
    assert "another origin" in str(refused) and not refused.sent
    assert server.posts == []


async def test_a_stream_that_ends_without_an_endpoint_event_is_unavailable() -> None:
    refused = await refusal(RawSse(b": just a comment\n\nevent: message\ndata: {}\n\n", close=True))
    assert "closed the SSE stream before its endpoint event" in str(refused)


async def test_a_get_that_is_not_an_event_stream_is_refused() -> None:
    refused = await refusal(RawSse(b"<html></html>", content_type="text/html"))
    assert "not an SSE stream" in str(refused)


async def test_malformed_events_are_skipped_and_the_response_still_arrives() -> None:
    async def answer(message: Message, send: Callable[[bytes], Awaitable[None]]) -> None:
        reply = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}})
        await send(b"data: {not json\n\ndata: [1, 2]\n\nevent: surprise\ndata: x\n\n")
        await send(b"data: " + reply.encode() + b"\r\n\r\n")

    server = RawSse(b"event: endpoint\r\ndata: /messages?sessionId=abc\r\n\r\n", answer)
    async with raw(server) as url, channel_to(url, Authorization="Bearer static") as channel:
        assert channel.endpoint == url.removesuffix("/sse") + "/messages?sessionId=abc"
        response = await channel.request({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, {})
        assert response["result"] == {"ok": True}
        assert server.gets[0]["authorization"] == "Bearer static"
        assert server.posts[0]["method"] == "tools/list"
        call = {"jsonrpc": "2.0", "id": 8, "method": "tools/list"}
        await channel.request(call, {}, auth=Bearer("of-this-call"))  # each call's own credentials
        assert server.post_headers[-1]["authorization"] == "Bearer of-this-call"


class Bearer(httpx2.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


async def test_a_dropped_stream_fails_the_pending_request_as_sent() -> None:
    async def drop(message: Message, send: Callable[[bytes], Awaitable[None]]) -> None:
        assert server.send_event is not None
        await server.send_event.aclose()  # the server ends the stream instead of answering

    server = RawSse(b"event: endpoint\ndata: /messages\n\n", drop)
    async with raw(server) as url, channel_to(url) as channel:
        with pytest.raises(UpstreamUnavailable, match="stopped answering") as caught:
            await channel.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}, {})
        assert caught.value.sent and not channel.alive
        with pytest.raises(UpstreamUnavailable) as again:
            await channel.request({"jsonrpc": "2.0", "id": 2, "method": "tools/call"}, {})
        assert not again.value.sent  # a dead channel sends nothing: the connector opens a new one


def http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def rpc_error(message: Message) -> bytes:
    error = {"code": -32602, "message": "bad params"}
    return json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error}).encode()


async def test_a_jsonrpc_error_in_a_4xx_answers_the_call_at_once() -> None:
    server = RawSse(
        b"event: endpoint\ndata: /messages\n\n", answer=lambda m: http("400 Bad Request", rpc_error(m))
    )
    async with raw(server) as url, channel_to(url) as channel:
        with anyio.fail_after(patience(5)):  # not at a deadline: the POST's answer is the response
            response = await channel.request({"jsonrpc": "2.0", "id": 3, "method": "tools/call"}, {})
        assert response == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32602, "message": "bad params"}}
        assert channel.alive and not channel._pending  # type: ignore[attr-defined]


async def test_an_inline_json_response_to_a_post_answers_the_call() -> None:
    def inline(message: Message) -> bytes:
        return http(
            "200 OK", json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"n": 1}}).encode()
        )

    server = RawSse(b"event: endpoint\ndata: /messages\n\n", answer=inline)
    async with raw(server) as url, channel_to(url) as channel:
        with anyio.fail_after(patience(5)):
            response = await channel.request({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}, {})
        assert response["result"] == {"n": 1}


async def test_a_404_for_a_post_expires_the_session_even_with_a_jsonrpc_body() -> None:
    server = RawSse(
        b"event: endpoint\ndata: /messages\n\n", answer=lambda m: http("404 Not Found", rpc_error(m))
    )
    async with raw(server) as url, channel_to(url) as channel:
        with anyio.fail_after(patience(5)), pytest.raises(SessionExpired):
            await channel.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}, {})
        assert not channel.alive  # the connector opens a new channel and tries once more


async def test_an_http_error_without_a_jsonrpc_body_fails_the_call_with_its_status() -> None:
    server = RawSse(
        b"event: endpoint\ndata: /messages\n\n",
        answer=lambda m: http("503 Service Unavailable", b"overloaded", "text/plain"),
    )
    async with raw(server) as url, channel_to(url) as channel:
        with anyio.fail_after(patience(5)), pytest.raises(UpstreamStatusError) as caught:
            await channel.request({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}, {})
        assert caught.value.upstream_status == 503
        assert not channel._pending  # type: ignore[attr-defined]


EVENTS = [("endpoint", "/messages?x=1"), ("message", '{"a": 1}'), ("message", "line one\nline two")]
WIRE = (
    b"event: endpoint\r\ndata: /messages?x=1\r\n\r\n"  # CRLF
    b": ping\n\n"  # a comment: no event
    b'data: {"a": 1}\r\r'  # CR
    b"data: line one\ndata: line two\n\n"  # LF, two data lines
)


def streamed(chunks: list[bytes]) -> httpx2.Response:
    """An SSE response whose body arrives in ``chunks``, as the channel reads one."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    request = httpx2.Request("GET", "http://127.0.0.1/sse")
    return httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=body(), request=request
    )


async def events_of(chunks: list[bytes], *, limit: int = 1 << 20) -> list[tuple[str, str]]:
    events = aiter(httpx2.EventSource(streamed(chunks), max_event_size=limit))
    seen: list[tuple[str, str]] = []
    ended = ""
    while not ended:
        try:
            seen.append(await _sse._next(events))
        except _sse._StreamEnded as exc:
            ended = str(exc)
    assert "closed the SSE stream" in ended
    return seen


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
def test_sse_events_do_not_depend_on_how_the_bytes_are_split(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(WIRE)]
    assert anyio.run(events_of, [WIRE[a:b] for a, b in itertools.pairwise(bounds)]) == EVENTS


def test_settings_take_the_transport_and_refuse_what_cannot_work() -> None:
    settings = parse_settings("connectors:\n  old:\n    kind: mcp\n    url: http://h/s\n    transport: sse\n")
    assert settings.connectors["old"].transport == "sse"  # type: ignore[union-attr]
    with pytest.raises(ConfigurationError, match="transport"):
        parse_settings("connectors:\n  old:\n    kind: mcp\n    command: x\n    transport: sse\n")
    with pytest.raises(ConfigurationError, match="2026-07-28"):
        parse_settings(
            "connectors:\n  old:\n    kind: mcp\n    url: http://h/sse\n    transport: sse\n"
            "    protocol: '2026-07-28'\n"
        )
    with pytest.raises(ConfigurationError, match="stateless"):
        HttpServer(url="http://h/sse", transport="sse", protocol="2026-07-28")


async def test_a_large_event_in_small_chunks_parses() -> None:
    payload = bytes(range(32, 127)) * (4 * 1024 * 1024 // 95)  # ~4 MB, no line ends
    wire = b"event: big\r\ndata: " + payload + b"\r\ndata: tail\r\n\r\n" + WIRE
    seen = await events_of([wire[i : i + 65536] for i in range(0, len(wire), 65536)], limit=8 << 20)
    assert seen == [("big", payload.decode() + "\ntail"), *EVENTS]


async def test_an_event_over_the_limit_ends_the_stream() -> None:
    chunks = [b"data: small\n\n" + b"data: " + b"x" * 600, b"x" * 600, b"\n\n", b"data: late\n\n"]
    events = aiter(httpx2.EventSource(streamed(chunks), max_event_size=1000))
    assert await _sse._next(events) == ("message", "small")  # what came before still arrives
    with pytest.raises(_sse._StreamEnded, match="1000 byte limit"):
        await _sse._next(events)
