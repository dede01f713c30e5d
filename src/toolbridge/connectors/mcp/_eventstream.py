"""Server-sent events read from an answer's body: the one SSE parser of both HTTP channels.

It follows the WHATWG event-stream rules (lines end in CR LF, LF or CR; ``data``, ``event``, ``id`` and
``retry`` fields; comments; a leading BOM), and yields ``httpx2.ServerSentEvent`` values with httpx2's
meaning (``id`` is the stream's last event id so far, ``retry`` the milliseconds a ``retry:`` field of
this event gave). It reads bytes, not text: the streamable-HTTP channel hands it the fast path's body
pieces without building an ``httpx2.Response`` (httpx2's ``EventSource`` decoding through
``aiter_text`` cost about four times this per answer; bench/README.md). An event bigger than
``max_event`` bytes raises ``httpx2.SSEError``, as ``EventSource`` does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

import httpx2

__all__ = ["sse_events"]

_LINE_END = re.compile(rb"\r\n|\r|\n")


async def sse_events(pieces: AsyncIterable[bytes], max_event: int) -> AsyncIterator[httpx2.ServerSentEvent]:
    """The events of the event stream whose body arrives as ``pieces``. As httpx2's decoder, an event is
    given once any of its fields came (an ``id:`` alone moves the last event id on: resumption needs it);
    ``max_event`` bounds an event's field lines, the unfinished line included."""
    buffer = bytearray()  # the unfinished line: appended to, split only when a piece ends a line
    first = True
    data: list[str] = []
    size = 0
    kind = ""
    last_id = ""
    retry: int | None = None
    pending = False
    async for piece in pieces:
        held_cr = buffer.endswith(b"\r")
        buffer += piece
        if first and len(buffer) >= 3:
            buffer, first = bytearray(buffer.removeprefix(b"\xef\xbb\xbf")), False
        if not held_cr and b"\n" not in piece and b"\r" not in piece:
            lines = []  # (splitting the whole buffer for each piece of a long line made reading it quadratic)
        else:
            # a CR at the end may be the first half of a CR LF: wait for the next piece
            split = buffer.endswith(b"\r")
            lines = _LINE_END.split(buffer[:-1] if split else buffer)
            buffer = bytearray(lines.pop() + (b"\r" if split else b""))
        for raw in lines:
            if not raw:  # the end of an event
                if pending:
                    yield httpx2.ServerSentEvent(kind or "message", "\n".join(data), last_id, retry)
                data, size, kind, retry, pending = [], 0, "", None, False
                continue
            if raw.startswith(b":"):
                continue  # a comment
            size += len(raw)
            if size > max_event:
                raise httpx2.SSEError(f"Server-sent event exceeded the {max_event} byte limit.")
            name, _, value = raw.decode("utf-8", errors="replace").partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
                pending = True
            elif name == "event":
                kind, pending = value, True
            elif name == "id":
                if "\0" not in value:
                    last_id, pending = value, True
            elif name == "retry" and value.isascii() and value.isdigit():
                retry, pending = int(value), True
        if size + len(buffer) > max_event:
            raise httpx2.SSEError(f"Server-sent event exceeded the {max_event} byte limit.")
