"""A long answer is read in time linear in its length, over stdio and in an SSE event: each piece used to
be appended to a bytes buffer that was split whole again (a 30 MB stdio result took 15 s through
toolbridge, 10 MB 1.3 s). Both readers are fed one long line in small pieces, as a slow pipe or socket
hands it over; the stdio reader also as its channel reads a real server's answer."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from tests._patience import patience
from toolbridge import Principal
from toolbridge.connectors.mcp import McpConnector, StdioServer
from toolbridge.connectors.mcp._eventstream import sse_events
from toolbridge.connectors.mcp._stdio import stdout_lines

from .conftest import hub_with

pytestmark = pytest.mark.anyio

SIZE = 8 * 1024 * 1024


async def _pieces(head: bytes, size: int, tail: bytes, piece: int = 512) -> AsyncIterator[bytes]:
    yield head
    for _ in range(size // piece):
        await anyio.lowlevel.checkpoint()  # as a socket's reads: the deadline below can fire between them
        yield b"x" * piece
    yield tail


async def test_a_long_stdio_line_is_read_in_linear_time() -> None:
    with anyio.fail_after(patience(5)):  # linear: a few tenths of a second; quadratic: minutes
        lines = [line async for line in stdout_lines(_pieces(b'{"a":"', SIZE, b'"}\n{}\n'), "test")]
    assert [len(line) for line in lines] == [SIZE + 8, 2]


async def test_a_long_sse_event_is_read_in_linear_time() -> None:
    with anyio.fail_after(patience(5)):
        events = [event async for event in sse_events(_pieces(b"data: ", SIZE, b"\n\n"), 16 * 1024 * 1024)]
    assert len(events) == 1 and len(events[0].data) == SIZE


BIG_ANSWER = """import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message:
        continue
    result = {
        "initialize": {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                       "serverInfo": {"name": "big", "version": "1"}},
        "tools/list": {"tools": [{"name": "big", "inputSchema": {"type": "object"}}]},
        "tools/call": {"content": [{"type": "text", "text": "x" * 20_000_000}]},
    }.get(message["method"], {})
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\\n")
    sys.stdout.flush()
"""


async def test_a_long_answer_of_a_stdio_server_reaches_the_caller_cut() -> None:
    server = StdioServer(sys.executable, ("-c", BIG_ANSWER), protocol="2025-11-25")
    async with hub_with(McpConnector("big", server)) as hub:
        result = await hub.call(Principal.local(), "big.big", {})
    assert result.truncated and result.size > 20_000_000 and '"text":"xxx' in result.text
