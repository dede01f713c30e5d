"""The OpenAPI connector's own wire (FastWire): what goes out, compressed answers, the cap, the read timeout.

A small server on 127.0.0.1 answers each request with the bytes a test gives it and records what it got."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import anyio
import anyio.abc
import httpx2
import pytest
from aiohttp.http import SERVER_SOFTWARE

from tests._patience import patience
from toolbridge.connectors.openapi._wire import FastWire, Outgoing
from toolbridge.errors import UpstreamUnavailable

pytestmark = pytest.mark.anyio

Answer = Callable[[int], bytes | None]  # the n-th request's answer (None: never answer)


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        buffer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                seen.append(head)
                reply = answer(len(seen))
                if reply is None:
                    await anyio.sleep_forever()
                else:
                    await stream.send(reply)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield f"http://127.0.0.1:{port}", seen
        tg.cancel_scope.cancel()


def ok(body: bytes, encoding: str | None = None) -> bytes:
    coded = f"content-encoding: {encoding}\r\n" if encoding else ""
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{coded}content-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


async def test_a_request_goes_out_with_the_head_aiohttp_gave_it() -> None:
    async with server(lambda n: ok(b'{"id": 1}')) as (base, seen):
        wire = FastWire(timeout=30.0)
        try:
            reply = await wire.send(Outgoing("GET", f"{base}/pets/1?tag=a%20b", {"X-Trace": "t"}), None, "t")
            page = await reply.read(1000)
            post = await wire.send(Outgoing("POST", f"{base}/pets", {}, b"{}"), None, "t")
            await post.read(1000)
        finally:
            await wire.aclose()
    assert page.status_code == 200 and page.content == b'{"id": 1}' and page.reason_phrase == "OK"
    assert page.headers.get("Content-Type") == "application/json"  # looked up case-blind
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /pets/1?tag=a%20b HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Host"] == base.removeprefix("http://")
    assert fields["X-Trace"] == "t" and fields["Accept"] == "*/*"
    assert fields["Accept-Encoding"] == "gzip, deflate"
    assert fields["User-Agent"] == SERVER_SOFTWARE  # made without importing aiohttp, as aiohttp made it
    post_fields = dict(line.split(": ", 1) for line in seen[1].decode().split("\r\n")[1:])
    assert post_fields["Content-Length"] == "2"
    assert post_fields["Content-Type"] == "application/octet-stream"
    assert len(seen) == 2  # one connection, kept alive: both requests reached the one server loop


def framing(head: bytes) -> list[str]:
    """The head's Content-Length and Transfer-Encoding lines, in any case."""
    lines = head.decode().split("\r\n")[1:]
    return [line for line in lines if line.split(":")[0].lower() in ("content-length", "transfer-encoding")]


@pytest.mark.parametrize(
    ("auth", "outgoing"),
    [
        (httpx2.BasicAuth("u", "p"), Outgoing("POST", "/things", {"content-type": "text/plain"}, b"{}")),
        (None, Outgoing("POST", "/upload", {}, files={"file": ("a.bin", b"\x00\x01", "application/x")})),
        (None, Outgoing("POST", "/form", {}, data={"name": "x"})),
    ],
    ids=["auth", "multipart", "form"],
)
async def test_a_body_is_framed_once_whatever_prepared_it(
    auth: httpx2.Auth | None, outgoing: Outgoing
) -> None:
    """Requests with auth or a multipart body go through httpx2 first, which sets its own content-length:
    it went out beside the wire's, and Node's parser (prism) answers two with a bare 400."""
    async with server(lambda n: ok(b"{}")) as (base, seen):
        wire = FastWire(timeout=30.0)
        try:
            sent = replace(outgoing, url=base + outgoing.url)
            await (await wire.send(sent, auth, "t")).read(100)
        finally:
            await wire.aclose()
    (line,) = framing(seen[0])
    assert line.lower().startswith("content-length: ") and int(line.split(": ")[1]) > 0


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", raw_deflate), ("br", lambda d: d)],
)
async def test_compressed_answers_are_decoded_and_capped_after_decoding(
    encoding: str, pack: Callable[[bytes], bytes]
) -> None:
    body = b'{"items": "' + b"x" * 50_000 + b'"}'
    async with server(lambda n: ok(pack(body), encoding)) as (base, _):
        wire = FastWire(timeout=30.0)
        try:
            whole = await (await wire.send(Outgoing("GET", f"{base}/a", {}), None, "t")).read(1 << 20)
            capped = await (await wire.send(Outgoing("GET", f"{base}/a", {}), None, "t")).read(100)
        finally:
            await wire.aclose()
    assert whole.content == body and not whole.truncated  # ("br" is not asked for: passed as it came)
    assert capped.content == body[:100] and capped.truncated


async def test_an_answer_that_does_not_come_in_time_is_late_and_not_sent_again() -> None:
    # The second request goes on the kept-alive connection and gets no answer: a read timeout, not a
    # broken connection, so it is not sent again on a new one (a GET would otherwise be replayed).
    async with server(lambda n: ok(b"{}") if n == 1 else None) as (base, seen):
        wire = FastWire(timeout=patience(1.0))  # the first answer must come within it on a busy machine
        try:
            await (await wire.send(Outgoing("GET", f"{base}/a", {}), None, "t")).read(100)
            with pytest.raises(UpstreamUnavailable) as caught:
                await wire.send(Outgoing("GET", f"{base}/a", {}), None, "t")
        finally:
            await wire.aclose()
    assert "did not answer in time" in caught.value.message
    assert caught.value.sent
    assert len(seen) == 2


async def test_a_host_name_no_resolver_can_encode_is_an_unreachable_upstream() -> None:
    """A base URL whose host has a label over 63 characters: the name failed to encode (idna) while
    connecting, and the call was a 'failed inside toolbridge' bug report (found by the outside SSRF
    probe). Nothing is looked up: the name fails before any query."""
    wire = FastWire(timeout=patience(5.0))
    try:
        with pytest.raises(UpstreamUnavailable, match="cannot be reached") as caught:
            await wire.send(Outgoing("GET", f"https://{'a' * 64}.example.test/x", {}), None, "t")
    finally:
        await wire.aclose()
    assert not caught.value.sent
