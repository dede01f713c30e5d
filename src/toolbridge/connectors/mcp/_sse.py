"""A remote MCP server over the legacy HTTP+SSE transport (2024-11-05): one GET stream, POSTs beside it.

The channel GETs the server's SSE URL and keeps that stream open for its whole life. The server's first
event, ``endpoint``, names where to POST messages (resolved against the SSE URL; another origin is
refused, so credentials never go elsewhere). Each request is POSTed there (the server answers 202) and
its response arrives on the stream, as do notifications and the server's own requests.

The stream is the session: when it ends, every pending request fails with
:class:`~toolbridge.errors.UpstreamUnavailable` (``sent=True``) and the channel is dead, so the connector
opens a new one for the next call. A 404 for a POST (the server forgot the session) raises
:class:`SessionExpired`. A POST's own answer can also settle its request at once: a JSON-RPC error (sent
with any HTTP status) or an inline response with the request's id answers it; another HTTP error fails it
with :class:`~toolbridge.errors.UpstreamStatusError`.

POSTs go through an :class:`HttpChannel` aimed at the endpoint (pooled keep-alive connections, the
static headers and each call's own credentials, :data:`~._http.UPSTREAM_AUTH`, read at send time). The
GET carries the credentials current when the channel starts.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.abc
import h11

from toolbridge.connectors.mcp._channel import Message, OnMessage, SessionExpired
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._http import UPSTREAM_AUTH, HttpChannel, _RpcAnswer, auth_headers
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["SseChannel", "SseEvents"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_READ = 65536
_CONNECT_TIMEOUT = 10.0
_ENDPOINT_TIMEOUT = 10.0
_MAX_EVENT = 16 * 1024 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class _StreamEnded(Exception):
    """The SSE stream ended or broke; the message says how."""


class SseEvents:
    """The events of one SSE response, read incrementally: ``(event type, data)`` pairs.

    Lines end in CRLF, LF or CR; ``data:`` lines of one event are joined with newlines; comments,
    ``id:`` and ``retry:`` are ignored; an event without data is not dispatched (the SSE standard).

    Each chunk is scanned once (the partial line is kept as a list of pieces, never rescanned), so an
    event costs time linear in its size. An event over :data:`_MAX_EVENT` bytes ends the stream.
    """

    def __init__(self, receive: Callable[[], Awaitable[bytes]] | None = None) -> None:
        self._receive = receive
        self._partial: list[bytes] = []  # the pieces of the line not yet ended
        self._partial_size = 0
        self._after_cr = False  # the last line ended in CR: a LF that comes next is the rest of a CRLF
        self._type = ""
        self._data: list[bytes] = []
        self._size = 0  # bytes held for the current event: its data lines and the partial line
        self._ready: deque[tuple[str, str]] = deque()
        self._error: str | None = None

    async def next(self) -> tuple[str, str]:
        """The next event; :class:`_StreamEnded` once the stream is over (or an event is too large)."""
        assert self._receive is not None, "give the events a receive function"
        while not self._ready:
            if self._error is not None:
                raise _StreamEnded(self._error)
            self._ready.extend(self.feed(await self._receive()))
        return self._ready.popleft()

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """Take the next bytes of the stream; the events they complete.

        Once an event has grown over :data:`_MAX_EVENT` bytes, the rest of the stream is ignored and
        :meth:`next` raises :class:`_StreamEnded` when the events before it have been taken.
        """
        if self._error is not None or not chunk:
            return []
        start = 0
        if self._after_cr and chunk[0] == 0x0A:
            start = 1
        self._after_cr = False
        events: list[tuple[str, str]] = []
        for match in _LINE_END.finditer(chunk, start):
            self._partial.append(chunk[start : match.start()])
            line = b"".join(self._partial)
            self._partial = []
            self._size -= self._partial_size
            self._partial_size = 0
            start = match.end()
            if (event := self._line(line)) is not None:
                events.append(event)
            if self._too_big():
                return events
        rest = chunk[start:]
        if rest:
            self._partial.append(rest)
            self._partial_size += len(rest)
            self._size += len(rest)
            self._too_big()
        self._after_cr = chunk.endswith(b"\r")
        return events

    def _too_big(self) -> bool:
        if self._size <= _MAX_EVENT:
            return False
        self._error = f"an SSE event is over {_MAX_EVENT} bytes; toolbridge ended the stream"
        self._partial, self._data, self._size, self._partial_size = [], [], 0, 0
        return True

    def _line(self, line: bytes) -> tuple[str, str] | None:
        if not line:
            event = None
            if self._data:
                event = (self._type or "message", b"\n".join(self._data).decode(errors="replace"))
            self._type, self._data, self._size = "", [], self._partial_size
            return event
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            self._data.append(value)
            self._size += len(value) + 1
        elif name == b"event":
            self._type = value.decode(errors="replace")
        return None


class _Receive:
    """The body bytes of an h11 response, chunk by chunk; :class:`_StreamEnded` when it is over."""

    def __init__(self, conn: h11.Connection, stream: anyio.abc.ByteStream) -> None:
        self._conn = conn
        self._stream = stream

    async def __call__(self) -> bytes:
        while True:
            try:
                event = self._conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await self._stream.receive(_READ)
                    except anyio.EndOfStream:
                        data = b""
                    self._conn.receive_data(data)
                    continue
            except (*_TRANSPORT_ERRORS, h11.ProtocolError) as exc:
                raise _StreamEnded(f"the SSE stream broke ({exc or type(exc).__name__})") from exc
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                raise _StreamEnded("the server closed the SSE stream")


class _Poster(HttpChannel):
    """The POSTs to the endpoint: an :class:`HttpChannel` whose answers the SSE channel reads itself."""

    async def post(
        self, message: Message, headers: Mapping[str, str], on_request: Callable[[Message], Awaitable[None]]
    ) -> Message | None:
        """POST ``message``; the answer to it carried by the POST's own response (an inline response
        with its id, or a JSON-RPC error sent with an HTTP error status), else ``None``."""
        answer: Message | None = None
        try:
            async for item in self._exchange(message, headers):
                if "method" in item:
                    await on_request(item)
                elif answer is None and "id" in message and item.get("id") == message["id"]:
                    answer = item
        except _RpcAnswer as rpc:
            return {**rpc.message, "id": message.get("id")}
        return answer

    def _raise_status(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        if status == 404:  # the session lives in the endpoint URL: a 404 means the server forgot it
            raise SessionExpired("HTTP 404")
        super()._raise_status(status, headers, body)


class _Pending:
    __slots__ = ("done", "response", "scope")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.response: Message | None = None
        self.scope = anyio.CancelScope()
        """Cancelled when the stream ends, so that a POST the server never answers ends too."""


class SseChannel:
    def __init__(self, server: HttpServer, task_group: anyio.abc.TaskGroup, on_message: OnMessage) -> None:
        parts = urlsplit(server.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{server.url!r} is not an http(s) URL", hint="give the SSE endpoint, e.g. https://host/sse"
            )
        self._server = server
        self._tg = task_group
        self._on_message = on_message
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._authority = parts.netloc.rpartition("@")[2]
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._origin = _origin(server.url)
        self._stream: anyio.abc.ByteStream | None = None
        self._poster: _Poster | None = None
        self._endpoint_url: str | None = None
        self._pending: dict[int | str, _Pending] = {}
        self._alive = False
        self._ended = "the SSE stream is not open"

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def describe(self) -> str:
        return f"the MCP server at {self._host}:{self._port} (legacy SSE)"

    @property
    def endpoint(self) -> str | None:
        """Where messages are POSTed (the server's ``endpoint`` event), once started."""
        return self._endpoint_url

    async def start(self) -> None:
        """Open the stream and wait for the ``endpoint`` event (bounded in time)."""
        stream = await self._connect()
        try:
            with anyio.fail_after(_ENDPOINT_TIMEOUT):
                events = await self._get(stream)
                endpoint = await self._endpoint(events)
        except TimeoutError as exc:
            await _close(stream)
            raise UpstreamUnavailable(
                f"{self.describe} sent no endpoint event within {_ENDPOINT_TIMEOUT:.0f} s",
                sent=False,
                hint="check that the URL is the server's SSE stream (often /sse)",
            ) from exc
        except BaseException:
            await _close(stream)
            raise
        self._stream = stream
        self._endpoint_url = endpoint
        self._poster = _Poster(
            HttpServer(url=endpoint, headers=self._server.headers, protocol="2025-11-25"), self._on_message
        )
        self._alive = True
        self._tg.start_soon(self._read, stream, events)

    async def aclose(self) -> None:
        self._alive = False
        self._ended = "the channel was closed"
        stream, self._stream = self._stream, None
        poster, self._poster = self._poster, None
        self._fail_pending()
        if stream is not None:
            await _close(stream)
        if poster is not None:
            await poster.aclose()

    def forget_session(self) -> None:
        return None  # the stream is the session: a new one needs a new channel

    async def request(self, message: Message, headers: Mapping[str, str]) -> Message:
        pending = _Pending()
        self._pending[message["id"]] = pending
        try:
            with pending.scope:
                inline = await self._post(message, headers)
                if inline is not None:  # answered in the POST's own response, not on the stream
                    pending.response = pending.response or inline
                    pending.done.set()
                await pending.done.wait()
        finally:
            self._pending.pop(message["id"], None)
        if pending.response is None:
            raise UpstreamUnavailable(
                f"{self.describe} stopped answering before its response to {message.get('method')!r}: "
                f"{self._ended}",
                sent=True,
                hint="toolbridge reconnects for the next call; check the result before repeating a write",
            )
        return pending.response

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        await self._post(message, headers)

    async def _post(self, message: Message, headers: Mapping[str, str]) -> Message | None:
        """POST ``message``; the response to it if the POST's own answer carries one.

        The server normally answers 202 and sends the response on the stream. A JSON-RPC error in the
        POST's answer (whatever the HTTP status) or an inline response with the request's id answers the
        request at once; a 404 means the server forgot the session (:class:`SessionExpired`); another
        HTTP error raises :class:`UpstreamStatusError`.
        """
        poster = self._poster
        if not self._alive or poster is None:
            raise UpstreamUnavailable(f"{self.describe}: {self._ended}", sent=False)
        try:
            answer = await poster.post(message, headers, self._from_server)
        except SessionExpired:
            self._alive = False
            self._ended = "the server forgot the session (HTTP 404)"
            raise
        return answer if "method" in message and "id" in message else None  # a reply's answer is no one's

    # -- the stream --------------------------------------------------------------------------------

    async def _connect(self) -> anyio.abc.ByteStream:
        try:
            with anyio.fail_after(_CONNECT_TIMEOUT):
                if self._tls:
                    return await anyio.connect_tcp(
                        self._host, self._port, tls=True, ssl_context=ssl.create_default_context()
                    )
                return await anyio.connect_tcp(self._host, self._port)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(
                f"cannot connect to {self.describe}: {exc}",
                sent=False,
                hint="check that the server is running and its URL is right",
            ) from exc

    async def _get(self, stream: anyio.abc.ByteStream) -> SseEvents:
        """Send the GET; the response must be a 2xx ``text/event-stream``."""
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
        head = [("host", self._authority), ("accept", "text/event-stream"), ("cache-control", "no-cache")]
        head += [(k.lower(), v) for k, v in self._server.headers.items()]
        target = self._target
        auth = UPSTREAM_AUTH.get()
        if auth is not None:
            target, added = auth_headers(auth, self._server.url, b"")
            replaced = {k for k, _ in added}
            head = [(k, v) for k, v in head if k not in replaced] + added
        receive = _Receive(conn, stream)
        try:
            await stream.send(conn.send(h11.Request(method="GET", target=target, headers=head)) or b"")
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await _receive_or_empty(stream))
                    continue
                if isinstance(event, h11.Response):
                    break
                if isinstance(event, h11.ConnectionClosed):
                    raise UpstreamUnavailable(f"{self.describe} closed the connection", sent=False)
        except (*_TRANSPORT_ERRORS, h11.ProtocolError) as exc:
            raise UpstreamUnavailable(f"{self.describe}: {exc or type(exc).__name__}", sent=False) from exc
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if event.status_code >= 300:
            retry_after = headers.get("retry-after")
            raise UpstreamStatusError(
                f"{self.describe} answered the GET of its SSE stream with HTTP {event.status_code}",
                upstream_status=event.status_code,
                retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if content_type != "text/event-stream":
            raise UpstreamUnavailable(
                f"{self.describe} answered the GET with {content_type or 'no content type'}, "
                "not an SSE stream (text/event-stream)",
                sent=False,
                hint="check that the URL is the server's SSE stream (often /sse)",
            )
        return SseEvents(receive)

    async def _endpoint(self, events: SseEvents) -> str:
        """The absolute URL of the first ``endpoint`` event, on the SSE URL's origin."""
        while True:
            try:
                kind, data = await events.next()
            except _StreamEnded as exc:
                raise UpstreamUnavailable(
                    f"{self.describe}: {exc} before its endpoint event", sent=False
                ) from exc
            if kind == "endpoint":
                break
            logger.debug("%s sent a %r event before its endpoint; ignored", self.describe, kind)
        url = urljoin(self._server.url, data.strip())
        parts = urlsplit(url)
        if _origin(url) != self._origin:
            raise UpstreamUnavailable(
                f"{self.describe} named an endpoint on another origin ({parts.scheme}://{parts.netloc}); "
                "toolbridge sends messages and credentials only to the SSE URL's own origin",
                sent=False,
                hint="the server must take messages on its own host and port",
            )
        return url

    async def _read(self, stream: anyio.abc.ByteStream, events: SseEvents) -> None:
        ended = "the server closed the SSE stream"
        try:
            while True:
                kind, data = await events.next()
                if kind == "message":
                    await self._dispatch(data)
                else:
                    logger.debug("%s sent a %r event; ignored", self.describe, kind)
        except _StreamEnded as exc:
            ended = str(exc)
        finally:
            if stream is self._stream:
                self._alive = False
                self._ended = ended
                self._fail_pending()
                self._stream = None
                await _close(stream)

    async def _dispatch(self, data: str) -> None:
        try:
            decoded = json.loads(data)
        except ValueError:
            logger.warning("%s sent an event that is not JSON: %.200r", self.describe, data)
            return
        for message in decoded if isinstance(decoded, list) else [decoded]:
            if not isinstance(message, dict):
                logger.warning("%s sent an event that is not a JSON-RPC message", self.describe)
            elif "method" not in message:
                pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
                if pending is not None:
                    pending.response = message
                    pending.done.set()
            else:
                await self._from_server(message)

    async def _from_server(self, message: Message) -> None:
        if "id" in message:  # a request may wait for an agent's answer: never in the reader
            self._tg.start_soon(self._serve, message)
        else:
            await self._on_message(message)

    async def _serve(self, request: Message) -> None:
        reply = await self._on_message(request)
        if reply is not None:
            await self._answer({"jsonrpc": "2.0", "id": request["id"], **reply})

    async def _answer(self, reply: Message) -> None:
        try:
            await self._post(reply, {})
        except (UpstreamUnavailable, UpstreamStatusError, SessionExpired) as exc:
            logger.debug("could not answer %s: %s", self.describe, exc)

    def _fail_pending(self) -> None:
        for pending in list(self._pending.values()):
            pending.done.set()
            pending.scope.cancel()


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # not a port number
        return None
    return (parts.scheme, parts.hostname, port) if parts.hostname else None


async def _receive_or_empty(stream: anyio.abc.ByteStream) -> bytes:
    try:
        return await stream.receive(_READ)
    except anyio.EndOfStream:
        return b""


async def _close(stream: anyio.abc.ByteStream) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
        await stream.aclose()
