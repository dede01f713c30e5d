"""A remote MCP server over streamable HTTP: pooled keep-alive HTTP/1.1 connections over anyio.

Each request is one POST whose answer is JSON or an SSE stream carrying notifications and, last, the
response. Connections are kept and reused across calls and agents; a connection that broke or was
abandoned mid-exchange (a cancelled call) is closed, never reused. The ``Mcp-Session-Id`` the server
gives at ``initialize`` is sent on every request; a 404 for it raises :class:`SessionExpired`.

A small client of our own rather than the SDK's transport: its per-request cost is a few tens of
microseconds, where the SDK's stream machinery costs milliseconds per call (see bench/mcp_proxy.py).
HTTP/1.1 itself is written and read here too (:class:`_Connection`): a client that sends POSTs
(and a DELETE) and reads their answers needs a small part of h11, whose general state machine cost
about 200 µs per exchange on the benchmark machine, several times this one. Every header value sent
is checked (no control characters, ASCII only), so no value can split the request; answers are framed
by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection, and a connection
is reused only after a complete keep-alive answer.

Streams the server ends early are followed, as the SDK's client does: a POST whose SSE answer closes
before the response (SSE polling, SEP-1699) is resumed with a ``GET`` carrying ``Last-Event-ID``, after
the server's ``retry`` delay; and a handshake-era session holds the session's ``GET`` stream open
(:meth:`HttpChannel.hold_stream`), reconnecting from the last event id, so the server's own log
messages, resource updates and list changes arrive.

Credentials are per request, not per channel: :data:`UPSTREAM_AUTH` holds the ``httpx2.Auth`` flow of the
connection the current call resolved (set by the connector around each request), and every POST gets
the headers (and query parameters) that flow puts on a request, read at send time — so a token refreshed
after a 401 is on the very next attempt. The agent's own token is never one of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextvars import ContextVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx2

from toolbridge.connectors.mcp._channel import Message, OnMessage, SessionExpired
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["UPSTREAM_AUTH", "HttpChannel", "auth_headers"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_READ = 65536
_MAX_HEAD = 1 << 20
_MAX_POOL = 16
_MAX_BODY = 64 * 1024 * 1024
_CONNECT_TIMEOUT = 10.0
_RETRY = 1.0
"""Seconds before following a stream again when the server named no ``retry`` (the SDK's default)."""
_RESUME_ATTEMPTS = 2
"""Resumptions in a row that may fail (or bring nothing new) before a call gives up (the SDK's number)."""
_MAX_STREAM_DELAY = 30.0
_ACCEPT = "application/json, text/event-stream"
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*|")
_TARGET = re.compile(r"[\x21-\x7e]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_OWN_HEADERS = frozenset({"host", "content-length", "content-type", "accept", "mcp-session-id"})

UPSTREAM_AUTH: ContextVar[httpx2.Auth | None] = ContextVar("toolbridge_mcp_upstream_auth", default=None)
"""The auth flow of the connection the current call uses (None: the upstream takes no credentials)."""


def auth_headers(auth: httpx2.Auth, url: str, body: bytes) -> tuple[str, list[tuple[str, str]]]:
    """The request target and the headers ``auth`` puts on a POST of ``body`` to ``url``.

    The flow runs on a throwaway ``httpx2.Request`` (so body-signing schemes such as SigV4 see the body);
    only what it added or changed is taken. Flows that need a response (digest auth) are not supported.
    """
    request = httpx2.Request("POST", url, content=body, headers={"content-type": "application/json"})
    before = {k.lower(): v for k, v in request.headers.items()}
    flow = auth.sync_auth_flow(request)
    try:
        signed = next(flow)
    finally:
        flow.close()
    added = [
        (k.lower(), v)
        for k, v in signed.headers.multi_items()
        if k.lower() not in _OWN_HEADERS and before.get(k.lower()) != v
    ]
    return signed.url.raw_path.decode("ascii"), added


class _Broken(Exception):
    """The connection failed; ``answered`` says whether any byte of the response had arrived."""

    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.answered = answered


class _Head:
    """The status and headers of an answer, and how its body is framed."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "status")

    def __init__(self, status: int, headers: dict[str, str], *, http11: bool) -> None:
        self.status = status
        self.headers = headers
        self.chunked = False
        self.length: int | None = None  # None with chunked: until the last chunk; else until the end
        encoding = headers.get("transfer-encoding")
        if status < 200 or status in (204, 304):
            self.length = 0
        elif encoding is not None:
            self.chunked = encoding.rpartition(",")[2].strip().lower() == "chunked"
        elif "content-length" in headers:
            declared = headers["content-length"]
            if not declared.isdigit():
                raise _Broken(f"bad Content-Length {declared[:40]!r}", answered=True)
            self.length = int(declared)
        closes = "close" in headers.get("connection", "").lower()
        self.keep_alive = http11 and not closes and (self.chunked or self.length is not None)


class _Connection:
    """One HTTP/1.1 connection: writes a request, then reads its answer's head and body piece by piece."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self._buffer = b""
        self._answered = False
        self._head: _Head | None = None
        self._left: int | None = None  # body bytes still due (content-length, or of the current chunk)
        self._done = True
        self._reusable = False

    async def send(self, data: bytes) -> None:
        """Write one whole request (one write), and expect its answer next."""
        self._answered = self._reusable = False
        self._done = True
        self._head = None
        try:
            await self.stream.send(data)
        except _TRANSPORT_ERRORS as exc:
            raise _Broken(str(exc) or type(exc).__name__, answered=False) from exc

    async def head(self) -> _Head:
        """The answer's head (informational 1xx answers skipped); then read the body with :meth:`piece`."""
        while True:
            match = _HEAD_END.search(self._buffer)
            if match is None:
                if len(self._buffer) > _MAX_HEAD:
                    raise _Broken(f"the answer's head is over {_MAX_HEAD} bytes", answered=True)
                if not await self._fill():
                    raise _Broken("the server closed the connection", answered=self._answered)
                continue
            raw, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            head = _parse_head(raw)
            if head.status >= 200:
                break
            if head.status == 101:
                raise _Broken("the server switched protocols", answered=True)
        self._head = head
        self._done = False
        self._left = 0 if head.chunked else head.length
        return head

    async def piece(self) -> bytes | None:
        """The next bytes of the body (never empty), or None once it is complete."""
        head = self._head
        if head is None or self._done:
            return None
        if head.chunked:
            return await self._chunk_piece()
        if self._left is None:  # until the server closes
            if not self._buffer and not await self._fill():
                self._done = True
                return None
            data, self._buffer = self._buffer, b""
            return data
        if self._left == 0:
            self._finish(head)
            return None
        data = await self._take(self._left)
        self._left -= len(data)
        return data

    def reusable(self) -> bool:
        return self._reusable

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.stream.aclose()

    async def _chunk_piece(self) -> bytes | None:
        assert self._head is not None and self._left is not None
        if self._left == 0:
            line = await self._line()
            match = _CHUNK_SIZE.fullmatch(line)
            if match is None:
                raise _Broken(f"bad chunk size line {line[:40]!r}", answered=True)
            size = int(match[1], 16)
            if size == 0:
                while await self._line():  # trailer fields, up to the empty line
                    pass
                self._finish(self._head)
                return None
            self._left = size
        data = await self._take(self._left)
        self._left -= len(data)
        if self._left == 0 and await self._line():
            raise _Broken("a chunk is longer than its size says", answered=True)
        return data

    def _finish(self, head: _Head) -> None:
        self._done = True
        self._reusable = head.keep_alive and not self._buffer  # bytes beyond the answer: do not trust it

    async def _take(self, most: int) -> bytes:
        if not self._buffer and not await self._fill():
            raise _Broken("the server closed the connection mid-answer", answered=True)
        data, self._buffer = self._buffer[:most], self._buffer[most:]
        return data

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > _MAX_HEAD:
                raise _Broken(f"a line of the answer is over {_MAX_HEAD} bytes", answered=True)
            if not await self._fill():
                raise _Broken("the server closed the connection mid-answer", answered=True)
        line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
        return line.removesuffix(b"\r")

    async def _fill(self) -> bool:
        """Read more of the answer into the buffer; False at the end of the stream."""
        try:
            data = await self.stream.receive(_READ)
        except anyio.EndOfStream:
            return False
        except _TRANSPORT_ERRORS as exc:
            raise _Broken(str(exc) or type(exc).__name__, answered=self._answered) from exc
        self._answered = True
        self._buffer += data
        return True


def _parse_head(raw: bytes) -> _Head:
    lines = raw.split(b"\n")
    status_line = lines[0].removesuffix(b"\r")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or not code.isdigit() or rest[3:4] not in (b"", b" "):
        raise _Broken(f"not an HTTP/1.1 answer: {status_line[:60]!r}", answered=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.removesuffix(b"\r").partition(b":")
        key = name.decode("latin-1").lower()
        if not colon or _TOKEN.fullmatch(key) is None:  # also refuses obsolete line folding
            raise _Broken(f"bad header line {line[:60]!r}", answered=True)
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key == "content-length" and headers[key] != text:
                raise _Broken("two different Content-Length headers", answered=True)
            text = text if key == "content-length" else f"{headers[key]}, {text}"
        headers[key] = text
    return _Head(int(code), headers, http11=version == b"HTTP/1.1")


def _request(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request head, refusing any target or header that could split or bend the request."""
    if _TARGET.fullmatch(target) is None:
        raise ValueError(f"cannot send the request target {target[:60]!r}")
    parts = [f"{method} {target} HTTP/1.1\r\n"]
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            raise ValueError(f"cannot send the header {name[:40]!r}: a control or non-ASCII character")
        parts.append(f"{name}: {value}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("ascii")


class HttpChannel:
    def __init__(self, server: HttpServer, on_message: OnMessage) -> None:
        parts = urlsplit(server.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{server.url!r} is not an http(s) URL", hint="give the MCP endpoint, e.g. https://host/mcp"
            )
        self._server = server
        self._on_message = on_message
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = parts.scheme == "https"
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._url = server.url
        authority = parts.netloc.rpartition("@")[2]
        base = [("host", authority), ("accept", _ACCEPT), ("content-type", "application/json")]
        self._base_headers = base + [(k.lower(), v) for k, v in server.headers.items()]
        try:
            _request("POST", self._target, self._base_headers)
        except ValueError as exc:
            raise ConfigurationError(
                f"cannot send requests to {server.url!r}: {exc}",
                hint="header names are tokens and values printable ASCII; percent-encode the URL's path",
            ) from exc
        self._idle: list[_Connection] = []
        self._session_id: str | None = None
        self._closed = False
        self._listening: anyio.CancelScope | None = None

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def describe(self) -> str:
        return f"the MCP server at {self._host}:{self._port}"

    @property
    def session_id(self) -> str | None:
        return self._session_id

    async def start(self) -> None:
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        if self._listening is not None:
            self._listening.cancel()
        idle, self._idle = self._idle, []
        if self._session_id is not None:
            await self._terminate()
        for conn in idle:
            await conn.aclose()

    def forget_session(self) -> None:
        self._session_id = None

    async def request(self, message: Message, headers: Mapping[str, str]) -> Message:
        response: Message | None = None
        events = _Events()
        try:
            async for item in self._exchange(message, headers, events):
                response = await self._handled(item, message, headers) or response
        except _RpcAnswer as answer:
            return {**answer.message, "id": message["id"]}
        if response is None and events.last_id is not None:  # closed early: the server polls
            response = await self._resumed(message, headers, events)
        if response is None:
            raise UpstreamUnavailable(
                f"{self.describe} ended its answer without a response to {message.get('method')!r}",
                sent=True,
            )
        return response

    async def _handled(self, item: Message, request: Message, headers: Mapping[str, str]) -> Message | None:
        """``item`` if it is the response to ``request``; a server message is handed on (and answered)."""
        if "method" in item:
            reply = await self._on_message(item)
            if reply is not None and "id" in item:
                await self.notify({"jsonrpc": "2.0", "id": item["id"], **reply}, headers)
            return None
        return item if item.get("id") == request.get("id") else None

    async def _resumed(self, message: Message, headers: Mapping[str, str], events: _Events) -> Message | None:
        """Follow a POST's SSE answer the server closed before the response: ``GET`` it again from the last
        event id after the server's ``retry`` delay, until the response comes; give up after
        :data:`_RESUME_ATTEMPTS` attempts in a row that fail or bring nothing new."""
        failures = 0
        while failures < _RESUME_ATTEMPTS:
            await anyio.sleep(events.retry if events.retry is not None else _RETRY)
            before = events.last_id
            try:
                async for item in self._stream(headers, events):
                    found = await self._handled(item, message, headers)
                    if found is not None:
                        return found
            except _NoStream as exc:  # the server cannot resume it (405, or the session is gone)
                logger.info("%s could not resume a stream: %s", self.describe, exc)
                return None
            except UpstreamUnavailable as exc:
                logger.debug("%s: resuming a stream failed: %s", self.describe, exc)
                failures += 1
                continue
            failures = 0 if events.last_id != before else failures + 1
        return None

    def hold_stream(
        self, tg: anyio.abc.TaskGroup, headers: Mapping[str, str], opened: Callable[[], object]
    ) -> None:
        """Keep the session's ``GET`` stream open (handshake era) as the current credentials: what the
        server sends on it reaches ``on_message``. It ends with the channel, its session, or a 405.
        ``opened`` is called each time the stream is (re)opened: what changed while it was not is lost
        (a server drops what it cannot send), so the caller lists again."""
        tg.start_soon(self._listen, UPSTREAM_AUTH.get(), dict(headers), opened)

    async def _listen(
        self, auth: httpx2.Auth | None, headers: Mapping[str, str], opened: Callable[[], object]
    ) -> None:
        UPSTREAM_AUTH.set(auth)  # a task of its own: the session opener's credentials
        events, session, delay = _Events(), self._session_id, 0.0
        with anyio.CancelScope() as self._listening:
            while not self._closed and session is not None and self._session_id == session:
                try:
                    async for item in self._stream(headers, events, opened):
                        delay = 0.0
                        await self._handled(item, {}, headers)
                except _NoStream as exc:  # 405: no GET stream here; 404 or 400: the session ended
                    logger.info("%s keeps no stream for its session: %s", self.describe, exc)
                    return
                except UpstreamUnavailable as exc:
                    delay = min(max(delay * 2, _RETRY), _MAX_STREAM_DELAY)
                    logger.debug("%s: the session's stream failed: %s", self.describe, exc)
                await anyio.sleep(delay or (events.retry if events.retry is not None else _RETRY))

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        with contextlib.suppress(_RpcAnswer):
            async for item in self._exchange(message, headers):
                if "method" in item:
                    await self._on_message(item)

    # -- one HTTP exchange -------------------------------------------------------------------------

    async def _exchange(
        self, message: Message, headers: Mapping[str, str], events: _Events | None = None
    ) -> AsyncIterator[Message]:
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        request = self._post(body, headers)
        conn = self._idle.pop() if self._idle else None
        for attempt in range(2):
            fresh = conn is None
            if conn is None:
                conn = await self._connect()
            try:
                await conn.send(request)
                async for item in self._read(conn, await conn.head(), events):
                    yield item
                break
            except _Broken as exc:
                await conn.aclose()
                conn = None
                # A reused keep-alive connection the server had closed: nothing was processed, try a new one.
                if not fresh and not exc.answered and attempt == 0:
                    continue
                raise UpstreamUnavailable(f"{self.describe}: {exc}", sent=True) from exc
            except BaseException:
                await conn.aclose()  # abandoned mid-exchange (cancelled, or an error above): never reuse
                conn = None
                raise
        if conn is not None:
            if conn.reusable() and len(self._idle) < _MAX_POOL and not self._closed:
                self._idle.append(conn)
            else:
                await conn.aclose()

    async def _connect(self) -> _Connection:
        try:
            with anyio.fail_after(_CONNECT_TIMEOUT):
                if self._tls:
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                        self._host, self._port, tls=True, ssl_context=ssl.create_default_context()
                    )
                else:
                    stream = await anyio.connect_tcp(self._host, self._port)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(
                f"cannot connect to {self.describe}: {exc}",
                sent=False,
                hint="check that the server is running and its URL is right",
            ) from exc
        return _Connection(stream)

    def _post(self, body: bytes, extra: Mapping[str, str]) -> bytes:
        """The whole POST of ``body``: head (with the current call's credentials) and body, one write."""
        head = list(self._base_headers)
        head.append(("content-length", str(len(body))))
        if self._session_id is not None:
            head.append(("mcp-session-id", self._session_id))
        head.extend(extra.items())
        target = self._target
        auth = UPSTREAM_AUTH.get()
        if auth is not None:
            target, added = auth_headers(auth, self._url, body)
            replaced = {k for k, _ in added}
            head = [(k, v) for k, v in head if k not in replaced] + added
        try:
            return _request("POST", target, head) + body
        except ValueError as exc:
            raise UpstreamUnavailable(
                f"cannot send a request to {self.describe}: {exc}",
                sent=False,
                hint="check the connector's headers and the connection's credentials",
            ) from exc

    async def _stream(
        self, headers: Mapping[str, str], events: _Events, opened: Callable[[], object] | None = None
    ) -> AsyncIterator[Message]:
        """The messages of one ``GET`` of the session's SSE stream, from ``events.last_id`` when set."""
        conn = await self._connect()
        try:
            await conn.send(self._get(headers, events.last_id))
            head = await conn.head()
            content_type = head.headers.get("content-type", "").split(";")[0].strip().lower()
            if head.status >= 300 or content_type != "text/event-stream":
                raise _NoStream(f"HTTP {head.status} ({content_type or 'no content type'})")
            if opened is not None:
                opened()
            async for item in _sse(conn, events):
                yield item
        except _Broken as exc:
            raise UpstreamUnavailable(f"{self.describe}: {exc}", sent=True) from exc
        finally:
            await conn.aclose()

    def _get(self, extra: Mapping[str, str], last_id: str | None) -> bytes:
        head = [(k, v) for k, v in self._base_headers if k not in ("accept", "content-type")]
        head.append(("accept", "text/event-stream"))
        if self._session_id is not None:
            head.append(("mcp-session-id", self._session_id))
        if last_id is not None:
            head.append(("last-event-id", last_id))
        head.extend(extra.items())
        target, auth = self._target, UPSTREAM_AUTH.get()
        if auth is not None:
            target, added = auth_headers(auth, self._url, b"")
            head = [(k, v) for k, v in head if k not in {k for k, _ in added}] + added
        try:
            return _request("GET", target, head)
        except ValueError as exc:
            raise UpstreamUnavailable(f"cannot GET {self.describe}: {exc}", sent=False) from exc

    async def _read(
        self, conn: _Connection, response: _Head, events: _Events | None
    ) -> AsyncIterator[Message]:
        headers, status = response.headers, response.status
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if status < 300 and "mcp-session-id" in headers:
            self._session_id = headers["mcp-session-id"]
        if content_type == "text/event-stream" and status < 300:
            async for item in _sse(conn, events or _Events()):
                yield item
            return
        body = await _body(conn)
        if status == 202:
            return
        if status >= 400:
            self._raise_status(status, headers, body)
        decoded = _json(body)
        if isinstance(decoded, dict):
            yield decoded
        elif decoded is not None:
            raise UpstreamUnavailable(
                f"{self.describe} answered with JSON that is not one message", sent=True
            )

    def _raise_status(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        text = body.decode(errors="replace")
        if self._session_id is not None and (status == 404 or (status == 400 and "session" in text.lower())):
            raise SessionExpired(f"HTTP {status}")
        decoded = _json(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict) and status != 401:
            raise _RpcAnswer(decoded)
        retry_after = headers.get("retry-after")
        raise UpstreamStatusError(
            f"{self.describe} answered HTTP {status}",
            upstream_status=status,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            body=text[:500] or None,
        )

    async def _terminate(self) -> None:
        """DELETE the session, politely and briefly (the server may already have dropped it)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                conn = await self._connect()
            except UpstreamUnavailable:
                return
            try:
                head = [*self._base_headers, ("mcp-session-id", self._session_id or "")]
                target, auth = self._target, UPSTREAM_AUTH.get()
                if auth is not None:  # the session opener's credentials (``Session.aclose`` sets them)
                    target, added = auth_headers(auth, self._url, b"")
                    head = [(k, v) for k, v in head if k not in {k for k, _ in added}] + added
                await conn.send(_request("DELETE", target, head))
                await conn.head()
            except (_Broken, ValueError):
                pass
            finally:
                await conn.aclose()
        self._session_id = None


class _NoStream(Exception):
    """A ``GET`` of the session's stream was refused (405: the server keeps none; 404: no such session)."""


class _Events:
    """Where an SSE stream stands: the last event id seen and the server's ``retry`` delay (seconds)."""

    __slots__ = ("last_id", "retry")

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry: float | None = None


class _RpcAnswer(Exception):
    """A JSON-RPC error sent with an HTTP error status: the session layer reads it as the response."""

    def __init__(self, message: Message) -> None:
        super().__init__("JSON-RPC error")
        self.message = message


async def _body(conn: _Connection) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while (piece := await conn.piece()) is not None:
        size += len(piece)
        if size > _MAX_BODY:
            raise _Broken(f"the answer is over {_MAX_BODY} bytes", answered=True)
        chunks.append(piece)
    return b"".join(chunks)


async def _sse(conn: _Connection, events: _Events) -> AsyncIterator[Message]:
    """The JSON-RPC messages of an SSE answer (``data:`` of each event); ``id:`` and ``retry:`` are kept
    in ``events`` (an event's id counts once the event is complete, as in the SSE specification)."""
    buffer = b""
    data: list[bytes] = []
    event_id: str | None = None
    while (piece := await conn.piece()) is not None:
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b"id:") and b"\0" not in line:
                event_id = line[3:].removeprefix(b" ").decode(errors="replace")
            elif line.startswith(b"retry:") and line[6:].strip().isdigit():
                events.retry = int(line[6:].strip()) / 1000
            elif not line:
                if event_id is not None:
                    events.last_id, event_id = event_id, None
                decoded = _json(b"\n".join(data)) if data else None
                data = []
                if isinstance(decoded, dict):
                    yield decoded


def _json(body: bytes) -> object:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
