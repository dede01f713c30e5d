"""JSON-RPC batches, served on connections that negotiated protocol version 2025-03-26.

2025-03-26 is the one MCP version with batches: its implementations MUST accept them (basic/index,
"Batching"; over streamable HTTP a POST may carry an array of requests and notifications, or of responses;
over stdio a line may). 2025-06-18 removed them, the 2026-07-28 era has none, and the SDK's transports
accept none (a batch was a -32602 validation error). So toolbridge serves a batch itself, as its messages:
each goes the way it would alone (over HTTP through the whole gate, in a POST of its own; over stdio as a
line of its own), concurrently and in no set order (over HTTP up to :data:`CONCURRENCY` requests at a
time), and their answers come back together as one JSON array in the batch's order. Notifications and
responses get no answer; a batch of nothing else is answered ``202`` over HTTP, and not at all over
stdio. ``initialize`` is never part of a batch (the version's own rule).

On a connection of any other version a batch is refused ``-32600`` as a whole, with what to do instead.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from starlette.types import Message, Send

__all__ = [
    "BATCH_VERSION",
    "CONCURRENCY",
    "BatchSessions",
    "batch_of",
    "batch_refusal",
    "in_batch_refusal",
    "serve_batch",
]

BATCH_VERSION: Final = "2025-03-26"
CONCURRENCY: Final = 16
"""Requests of one HTTP batch served at a time."""
_INVALID_REQUEST: Final = -32600
_MAX_SESSIONS: Final = 10_000  # the SDK's own bound on open sessions


def batch_of(body: bytes) -> list[Any] | None:
    """The messages of a body that is a JSON array; None for anything else (one message, or not JSON:
    those are answered as they would be without batches)."""
    if body.lstrip()[:1] != b"[":
        return None
    try:
        found = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, list) else None


def batch_refusal(elements: list[Any], version: str | None) -> dict[str, Any]:
    """The -32600 answer (``id: null``) to a batch this connection does not take, saying what to send."""
    if not elements:
        why = "an empty batch holds no message"
    elif any(isinstance(e, dict) and e.get("method") == "initialize" for e in elements):
        why = "initialize is sent alone, never in a batch"
    else:
        speaks = f"this connection speaks {version}" if version else "this connection was not opened with it"
        why = (
            f"batches are served only on connections opened with protocolVersion {BATCH_VERSION!r}, the "
            f"one MCP version that has them ({speaks})"
        )
    return _error(None, f"Invalid Request: {why}; send each JSON-RPC message on its own")


def in_batch_refusal(element: Any) -> dict[str, Any] | None:
    """The answer to a message no batch may hold (``initialize``), None for any other."""
    if not isinstance(element, dict) or element.get("method") != "initialize":
        return None
    ident = element.get("id")
    usable = isinstance(ident, str | int) and not isinstance(ident, bool)
    return _error(ident if usable else None, "Invalid Request: initialize is sent alone, never in a batch")


def _error(ident: str | int | None, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": _INVALID_REQUEST, "message": message}}


@dataclass(slots=True)
class BatchSessions:
    """The HTTP sessions opened with :data:`BATCH_VERSION`, and whose they are (seen in their
    ``initialize`` answers). They are kept after they end, so that a batch sent on one is told ``404``, as
    a single message is; the least recently used are forgotten first beyond the SDK's bound on sessions."""

    _owners: OrderedDict[str, str] = field(default_factory=OrderedDict[str, str])

    def allows(self, session_id: str | None, principal_id: str) -> bool:
        if session_id is None or self._owners.get(session_id) != principal_id:
            return False
        self._owners.move_to_end(session_id)
        return True

    def watching(self, principal_id: str, send: Send) -> Send:
        """``send`` for an ``initialize`` request: the session it opens is remembered when it speaks
        :data:`BATCH_VERSION`."""
        session_id: str | None = None
        chunks: list[bytes] = []

        async def watch(message: Message) -> None:
            nonlocal session_id
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = dict(message.get("headers", ()))
                found = headers.get(b"mcp-session-id")
                session_id = found.decode("latin-1") if found else None
            elif message["type"] == "http.response.body" and session_id is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False) and _negotiated(b"".join(chunks)) == BATCH_VERSION:
                    self._owners[session_id] = principal_id
                    while len(self._owners) > _MAX_SESSIONS:
                        self._owners.popitem(last=False)
            await send(message)

        return watch


def _negotiated(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    return version if isinstance(version, str) else None


ServeOne = Callable[[bytes, Send], Awaitable[None]]
"""Serves one message (its JSON) as if it were a POST of its own, answering on the given ``send``."""


@dataclass(slots=True)
class _Answer:
    status: int = 500
    content_type: bytes = b""
    body: bytearray = field(default_factory=bytearray)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.content_type = dict(message.get("headers", ())).get(b"content-type", b"")
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def messages(self) -> list[Any]:
        """The JSON-RPC messages it carries (none for a 202)."""
        if not self.body or not self.content_type.startswith(b"application/json"):
            return []
        found = json.loads(self.body)
        return found if isinstance(found, list) else [found]


async def serve_batch(elements: list[Any], serve_one: ServeOne) -> tuple[int, bytes | None]:
    """The HTTP status and body answering a batch: 200 and the answers as a JSON array when it held a
    request; for a batch of notifications and responses 202 and no body, or the first refusal's status
    and the refusals; 404 and the transport's answer when the session is gone."""
    answers = [_Answer() for _ in elements]
    limiter = anyio.CapacityLimiter(CONCURRENCY)

    async def serve(element: Any, answer: _Answer) -> None:
        refused = in_batch_refusal(element)
        if refused is not None:
            answer.status, answer.content_type = 400, b"application/json"
            answer.body += json.dumps(refused).encode()
        elif _is_request(element):
            async with limiter:
                await serve_one(json.dumps(element).encode(), answer.send)
        else:  # (a notification or a response waits for no slot: one may cancel a request holding one)
            await serve_one(json.dumps(element).encode(), answer.send)

    async with anyio.create_task_group() as tg:
        for element, answer in zip(elements, answers, strict=True):
            tg.start_soon(serve, element, answer)
    if all(answer.status == 404 for answer in answers):  # the session ended: told as for one message
        return 404, bytes(answers[0].body)
    found = [message for answer in answers for message in answer.messages()]
    if any(_is_request(e) for e in elements):
        return 200, json.dumps(found).encode()
    refused = next((a.status for a in answers if a.status >= 400), None)
    if refused is None:
        return 202, None
    return refused, json.dumps(found).encode()


def _is_request(element: Any) -> bool:
    return isinstance(element, dict) and isinstance(element.get("method"), str) and "id" in element
