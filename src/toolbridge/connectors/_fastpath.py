"""toolbridge's own HTTP/1.1 client: the MCP channel's fast path (also as an httpx2 transport), and the
OpenAPI connector's wire on asyncio (``connectors/openapi/_wire.py``'s ``FastWire``).

Requests to an HTTP upstream go by this transport unless the connector names a ``proxy`` (then httpx2's
client, over httpcore, carries them) or sets ``fast_path: false``. It exists because the MCP proxy
benchmarks (bench/mcp_proxy.py, bench/mcp_channel.py) measure httpx2's client costing the proxy about
three times the CPU per exchange (httpcore's pool checks, h11's state machine, the request head and body
written by two system calls instead of one) and aiohttp's half again as much: a client that sends POSTs,
GETs and a DELETE and reads their answers needs a small part of HTTP/1.1.
It speaks HTTP/1.1 over TCP or TLS (the connector's CA and client certificate apply) and nothing else:
no proxy, no HTTP/2 (the settings refuse ``fast_path: true`` with a proxy).

Every header value sent is checked (no control characters, ASCII only), so no value can split the
request; answers are framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the
connection, and a connection is reused only after a complete keep-alive answer. A connection that broke
or was abandoned mid-answer (a cancelled call) is closed, never reused. An idle connection on which the
server has closed (or sent anything) is not reused. A request that a reused connection carried and that
got no byte of answer is sent once more on a new connection only when it is replayable (idempotent
methods; a ``POST`` only when the caller says so: the server may have processed it before it broke).

An idle connection is kept for less time than the server keeps it: servers close idle connections after a
few seconds (uvicorn and Node after 5), and a request sent as the server closes fails without an answer,
which for a non-idempotent call leaves its outcome unknown. As undici does, a connection is kept
:data:`IDLE_TIMEOUT` seconds, or for the ``timeout=N`` the server announces in a ``Keep-Alive`` header
less :data:`_IDLE_MARGIN` (not at all when that leaves nothing).
"""

from __future__ import annotations

import contextlib
import functools
import re
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import anyio
import anyio.abc
import httpx2

from toolbridge.connectors._tcp import connect

__all__ = ["IDLE_TIMEOUT", "FastAnswer", "FastTransport"]

_READ = 65536
_MAX_HEAD = 1 << 20
_MAX_IDLE = 16
_CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 4.0
"""Seconds an idle connection is kept when the server announces no timeout (undici's default): below the
5 s after which uvicorn and Node close one."""
_IDLE_MARGIN = 2.0
"""Taken off a server's announced ``Keep-Alive: timeout`` (undici's threshold): time for a request to
reach the server before its timer fires, clocks that tick apart."""
_MAX_IDLE_TIMEOUT = 600.0
_KEEP_ALIVE_TIMEOUT = re.compile(r"(?:^|,)[ \t]*timeout[ \t]*=[ \t]*([0-9]{1,9})\b", re.IGNORECASE)
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*|")
_TARGET = re.compile(r"[\x21-\x7e]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods whose request can be sent again without a second effect (RFC 9110 section 9.2.2)."""

Origin = tuple[str, str, int]


class FastTransport(httpx2.AsyncBaseTransport):
    """HTTP/1.1 over pooled keep-alive connections (``ssl_context`` for ``https://``); ``idle_timeout``:
    how long an idle connection is kept when the server announces no timeout; ``clock``: seconds, for
    that (tests pass their own)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_idle: int = _MAX_IDLE,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        connect_timeout: float = _CONNECT_TIMEOUT,
        read_timeout: float | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        """Seconds a read may wait for bytes (``TimeoutError``); None: as long as the caller's deadline."""
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False
        self._parsed: tuple[httpx2.URL, Origin, str] | None = None
        """The last URL sent to, its origin and path (a channel sends every request to one URL)."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in request.headers.raw]
        body = await request.aread()
        replayable = request.extensions.get("replayable")
        answer = await self.open(request.method, request.url, headers, body, request, replayable=replayable)
        return httpx2.Response(
            answer.status_code,
            headers=list(answer.headers.items()),
            stream=answer.body,
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def open(
        self,
        method: str,
        url: httpx2.URL,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        request: httpx2.Request | None = None,
        *,
        replayable: bool | None = None,
        target: str | None = None,
    ) -> FastAnswer:
        """Send one request (``headers`` as they go out, ``Host`` and ``Content-Length`` included) and
        return its answer once the head has arrived, without httpx2's request and response objects (the
        channel's own use); failures as httpx2's exceptions, a read timeout as ``TimeoutError``.
        ``replayable``: whether the request may be sent twice (default: by its method); ``target``: the
        request target when it is not ``url``'s path (a query)."""
        try:
            where, path = self._origin_and_path(url)
            data = _request(method, target or path, headers) + body
        except ValueError as exc:
            raise httpx2.LocalProtocolError(str(exc), request=request) from exc
        conn = await self._idle_connection(where)
        for attempt in range(2):
            fresh = conn is None
            if conn is None:
                conn = await self._connect(where, request)
            try:
                await conn.send(data)
                head = await conn.head()
            except _Broken as exc:
                await conn.aclose()
                conn = None
                # A reused connection that broke before any answer: the server may have closed it as the
                # request went out (nothing processed) or broken while processing it; only a request that
                # can have no second effect goes again.
                again = replayable if replayable is not None else method in _REPLAYABLE
                if again and not fresh and not exc.answered and attempt == 0:
                    continue
                raise httpx2.ReadError(str(exc), request=request) from exc
            except BaseException:
                await conn.aclose()  # abandoned mid-exchange (cancelled): never reused
                raise
            return FastAnswer(head, _Body(conn, lambda done: self._release(where, done), request))
        raise AssertionError("unreachable")

    def _origin_and_path(self, url: httpx2.URL) -> tuple[Origin, str]:
        parsed = self._parsed
        if parsed is None or parsed[0] is not url:  # (httpx2.URL is immutable)
            where: Origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80))
            parsed = self._parsed = (url, where, url.raw_path.decode("ascii"))
        return parsed[1], parsed[2]

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.aclose()

    async def _idle_connection(self, where: Origin) -> _Connection | None:
        """The connection to ``where`` idle for the shortest time, if any was idle for less than it is kept
        (the others are closed: the server may be closing them)."""
        idle = self._idle.get(where)
        while idle:
            conn = idle.pop()
            if self._clock() < conn.idle_until and not conn.readable():
                return conn
            await conn.drop()
        return None

    async def _release(self, where: Origin, conn: _Connection) -> None:
        idle = self._idle.setdefault(where, [])
        keep_for = conn.keep_for(self._idle_timeout)
        if keep_for > 0 and len(idle) < self._max_idle and not self._closed:
            conn.idle_until = self._clock() + keep_for
            idle.append(conn)
        else:
            await conn.aclose()

    async def _connect(self, where: Origin, request: httpx2.Request | None) -> _Connection:
        scheme, host, port = where
        try:
            with anyio.fail_after(self._connect_timeout):
                context = (self._ssl or ssl.create_default_context()) if scheme == "https" else None
                stream = await connect(host, port, context, read_timeout=self._read_timeout)
        except TimeoutError as exc:
            raise httpx2.ConnectTimeout(
                f"no connection within {self._connect_timeout:g} s", request=request
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(str(exc), request=request) from exc
        except UnicodeError as exc:  # a name no resolver can encode (idna: a label over 63 characters)
            raise httpx2.ConnectError(f"cannot look up {host!r}: {exc}", request=request) from exc
        return _Connection(stream)


class FastAnswer:
    """An answer whose head has arrived: ``status_code`` and ``headers`` (names in lower case), the body
    read with :meth:`aiter_bytes`; :meth:`aclose` hands a connection read to its end back to the pool."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, head: _Head, body: _Body) -> None:
        self.status_code = head.status
        self.headers = head.headers
        self.body = body

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self.body.__aiter__()

    async def aclose(self) -> None:
        await self.body.aclose()


class _Body(httpx2.AsyncByteStream):
    """An answer's body, read from its connection; the connection goes back to the pool when it is read
    whole (and may be reused), else it is closed."""

    def __init__(
        self,
        conn: _Connection,
        release: Callable[[_Connection], Awaitable[None]],
        request: httpx2.Request | None,
    ) -> None:
        self._conn: _Connection | None = conn
        self._release = release
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        try:
            while (piece := await conn.piece()) is not None:
                yield piece
        except _Broken as exc:
            raise httpx2.ReadError(str(exc), request=self._request) from exc

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if conn.complete:
            await self._release(conn)
        else:
            await conn.aclose()


class _Broken(Exception):
    """The connection failed; ``answered`` says whether any byte of the response had arrived."""

    def __init__(self, reason: str, *, answered: bool) -> None:
        super().__init__(reason)
        self.answered = answered


class _Head:
    """The status and headers of an answer, and how its body is framed."""

    __slots__ = ("announced", "chunked", "headers", "keep_alive", "length", "status")

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
        self.announced = _announced_timeout(headers.get("keep-alive"))
        """The idle timeout the server announced (``Keep-Alive: timeout=N``), if any."""


class _Connection:
    """One HTTP/1.1 connection: writes a request, then reads its answer's head and body piece by piece."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self._socket: socket.socket | None = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._pending: Callable[[], bool] | None = getattr(stream, "pending", None)
        """(An asyncio-protocol stream reads while the connection is idle: what it took, poll cannot see.)"""
        self._buffer = b""
        self._answered = False
        self._head: _Head | None = None
        self._left: int | None = None  # body bytes still due (content-length, or of the current chunk)
        self._done = True
        self._reusable = False
        self.idle_until = 0.0
        """When, on the transport's clock, this connection stops being reused (set while it is idle)."""

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

    def readable(self) -> bool:
        """Whether the idle connection has something to read: the server closed it (or sent bytes no
        request asked for); either way it is not reused."""
        if self._buffer or (self._pending is not None and self._pending()):
            return True
        sock = self._socket
        if sock is None:
            return False
        if sock.fileno() < 0:
            return True
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

    def keep_for(self, default: float) -> float:
        """How long to keep this connection once idle (0: close it): ``default``, or the timeout the last
        answer announced less a margin."""
        if not self._reusable or self._head is None:
            return 0.0
        announced = self._head.announced
        return default if announced is None else min(announced - _IDLE_MARGIN, _MAX_IDLE_TIMEOUT)

    @property
    def complete(self) -> bool:
        """Whether the current answer was read to its end."""
        return self._done

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1), contextlib.suppress(*_TRANSPORT_ERRORS):
            await self.stream.aclose()  # (a TLS stream the server broke fails its goodbye: it is closed)

    async def drop(self) -> None:
        """Close without a TLS goodbye: an idle connection past its time, whose server may be gone."""
        abort = getattr(self.stream, "abort", None)
        if abort is not None:
            await abort()
            return
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            await anyio.aclose_forcefully(self.stream)

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
        except TimeoutError:  # the read timeout: no answer in time, not a broken connection to retry on
            raise
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


def _announced_timeout(value: str | None) -> float | None:
    """The ``timeout=N`` (seconds) of a ``Keep-Alive`` header such as ``timeout=5, max=100``."""
    return _parse_keep_alive(value) if value else None


@functools.lru_cache(maxsize=64)
def _parse_keep_alive(value: str) -> float | None:
    """(A server sends the same value with every answer: the case-blind search, ~20,000 instructions by
    callgrind, is made once per value.)"""
    match = _KEEP_ALIVE_TIMEOUT.search(value)
    return float(match[1]) if match else None


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
