"""The SSE parser both HTTP channels read event streams with, against httpx2's own (``EventSource``):
the same events for the same bytes however the body is split, and the same refusal of an oversized event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from toolbridge.connectors.mcp._eventstream import sse_events

pytestmark = pytest.mark.anyio

STREAM = (
    "\ufeff: a comment first\r\n"
    "retry: 2500\r\n"
    "id: 7\r\n"
    'data: {"jsonrpc":"2.0","method":"notifications/message"}\r\n'
    "\r\n"
    "event: endpoint\r"
    "data: /messages?session=é1\r"
    "\r"
    "id: 8\n"  # an id alone: given, so the stream's last event id moves on
    "\n"
    "data: first line\n"
    "data:second line\n"
    "data\n"
    "id: bad\0id\n"
    "retry: soon\n"
    "\n"
    "data: an event the stream ends before finishing\n"
).encode()


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at : at + size]


async def _ours(body: bytes, size: int, max_event: int = 1 << 20) -> list[httpx2.ServerSentEvent]:
    return [event async for event in sse_events(_pieces(body, size), max_event)]


async def _httpx2s(body: bytes, max_event: int = 1 << 20) -> list[httpx2.ServerSentEvent]:
    response = httpx2.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=body,
        request=httpx2.Request("GET", "http://127.0.0.1/"),
    )
    return [event async for event in httpx2.EventSource(response, max_event_size=max_event)]


async def test_the_events_are_httpx2s_however_the_body_is_split() -> None:
    expected = await _httpx2s(STREAM)
    assert [e.data for e in expected][:2] == [
        '{"jsonrpc":"2.0","method":"notifications/message"}',
        "/messages?session=é1",
    ]
    assert expected[0].retry == 2500 and expected[0].id == "7" and expected[1].event == "endpoint"
    assert expected[2].id == "8" and expected[3].data == "first line\nsecond line\n"
    for size in (1, 2, 3, 5, 64, len(STREAM)):
        assert await _ours(STREAM, size) == expected, f"pieces of {size} bytes"


async def test_an_event_over_the_limit_is_refused_as_httpx2_refuses_it() -> None:
    big = b"data: " + b"x" * 100 + b"\n\n"
    assert len(await _ours(big, 7, max_event=200)) == 1
    with pytest.raises(httpx2.SSEError):
        await _httpx2s(big, max_event=50)
    for body in (big, big[:-2]):  # a finished event, and an unfinished line that keeps growing
        with pytest.raises(httpx2.SSEError):
            await _ours(body, 7, max_event=50)
