"""A remote MCP server over streamable HTTP: pooled keep-alive HTTP/1.1 connections (h11 over anyio).

Each request is one POST whose answer is JSON or an SSE stream carrying notifications and, last, the
response. Connections are kept and reused across calls and agents; a connection that broke or was
abandoned mid-exchange (a cancelled call) is closed, never reused. The ``Mcp-Session-Id`` the server
gives at ``initialize`` is sent on every request; a 404 for it raises :class:`SessionExpired`.

A small client of our own rather than the SDK's transport: its per-request cost is a few tens of
microseconds, where the SDK's stream machinery costs milliseconds per call (see bench/mcp_proxy.py).

Credentials are per request, not per channel: :data:`UPSTREAM_AUTH` holds the ``httpx2.Auth`` flow of the
connection the current call resolved (set by the connector around each request), and every POST gets
the headers (and query parameters) that flow puts on a request, read at send time — so a token refreshed
after a 401 is on the very next attempt. The agent's own token is never one of them.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11
import httpx2

from toolbridge.connectors.mcp._channel import Message, OnMessage, SessionExpired
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["UPSTREAM_AUTH", "HttpChannel", "auth_headers"]

_READ = 65536
_MAX_POOL = 16
_MAX_BODY = 64 * 1024 * 1024
_CONNECT_TIMEOUT = 10.0
_ACCEPT = "application/json, text/event-stream"
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
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


class _Connection:
    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
        self.used = False

    async def send(self, *events: h11.Event) -> None:
        data = b"".join(self.h11.send(event) or b"" for event in events)
        await self.stream.send(data)

    async def next_event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self.stream.receive(_READ)
            except anyio.EndOfStream:
                data = b""
            self.h11.receive_data(data)

    def reusable(self) -> bool:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            return True
        return False

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.stream.aclose()


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
        self._idle: list[_Connection] = []
        self._session_id: str | None = None
        self._closed = False

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
        idle, self._idle = self._idle, []
        if self._session_id is not None:
            await self._terminate()
        for conn in idle:
            await conn.aclose()

    def forget_session(self) -> None:
        self._session_id = None

    async def request(self, message: Message, headers: Mapping[str, str]) -> Message:
        response: Message | None = None
        try:
            async for item in self._exchange(message, headers):
                if "method" in item:
                    reply = await self._on_message(item)
                    if reply is not None and "id" in item:
                        await self.notify({"jsonrpc": "2.0", "id": item["id"], **reply}, headers)
                elif item.get("id") == message["id"]:
                    response = item
        except _RpcAnswer as answer:
            return {**answer.message, "id": message["id"]}
        if response is None:
            raise UpstreamUnavailable(
                f"{self.describe} ended its answer without a response to {message.get('method')!r}",
                sent=True,
            )
        return response

    async def notify(self, message: Message, headers: Mapping[str, str]) -> None:
        with contextlib.suppress(_RpcAnswer):
            async for item in self._exchange(message, headers):
                if "method" in item:
                    await self._on_message(item)

    # -- one HTTP exchange -------------------------------------------------------------------------

    async def _exchange(self, message: Message, headers: Mapping[str, str]) -> AsyncIterator[Message]:
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        conn = self._idle.pop() if self._idle else None
        for attempt in range(2):
            fresh = conn is None
            if conn is None:
                conn = await self._connect()
            try:
                async for item in self._on(conn, body, headers):
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

    async def _on(self, conn: _Connection, body: bytes, extra: Mapping[str, str]) -> AsyncIterator[Message]:
        head = list(self._base_headers)
        head.append(("content-length", str(len(body))))
        if self._session_id is not None:
            head.append(("mcp-session-id", self._session_id))
        head.extend((k, v) for k, v in extra.items())
        target = self._target
        auth = UPSTREAM_AUTH.get()
        if auth is not None:
            target, added = auth_headers(auth, self._url, body)
            replaced = {k for k, _ in added}
            head = [(k, v) for k, v in head if k not in replaced] + added
        try:
            request = h11.Request(method="POST", target=target, headers=head)
            await conn.send(request, h11.Data(data=body), h11.EndOfMessage())  # one write
            event = await conn.next_event()
        except (*_TRANSPORT_ERRORS, h11.ProtocolError) as exc:
            raise _Broken(str(exc) or type(exc).__name__, answered=False) from exc
        if not isinstance(event, h11.Response):
            raise _Broken(f"unexpected answer {type(event).__name__}", answered=False)
        async for item in self._read(conn, event):
            yield item

    async def _read(self, conn: _Connection, response: h11.Response) -> AsyncIterator[Message]:
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in response.headers}
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code < 300 and "mcp-session-id" in headers:
            self._session_id = headers["mcp-session-id"]
        if content_type == "text/event-stream" and response.status_code < 300:
            async for item in _sse(conn):
                yield item
            return
        body = await _body(conn)
        if response.status_code == 202:
            return
        if response.status_code >= 400:
            self._raise_status(response.status_code, headers, body)
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
                await conn.send(
                    h11.Request(method="DELETE", target=self._target, headers=head), h11.EndOfMessage()
                )
                await conn.next_event()
            except (*_TRANSPORT_ERRORS, h11.ProtocolError):
                pass
            finally:
                await conn.aclose()
        self._session_id = None


class _RpcAnswer(Exception):
    """A JSON-RPC error sent with an HTTP error status: the session layer reads it as the response."""

    def __init__(self, message: Message) -> None:
        super().__init__("JSON-RPC error")
        self.message = message


async def _body(conn: _Connection) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await _event(conn, answered=True)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > _MAX_BODY:
                raise _Broken(f"the answer is over {_MAX_BODY} bytes", answered=True)
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(chunks)


async def _event(conn: _Connection, *, answered: bool) -> h11.Event:
    try:
        event = await conn.next_event()
    except (*_TRANSPORT_ERRORS, h11.ProtocolError) as exc:
        raise _Broken(str(exc) or type(exc).__name__, answered=answered) from exc
    if isinstance(event, h11.ConnectionClosed):
        raise _Broken("the server closed the connection mid-answer", answered=answered)
    return event


async def _sse(conn: _Connection) -> AsyncIterator[Message]:
    """The JSON-RPC messages of an SSE answer (``data:`` of each event; other fields ignored)."""
    buffer = b""
    data: list[bytes] = []
    while True:
        event = await _event(conn, answered=True)
        if isinstance(event, h11.EndOfMessage):
            return
        if not isinstance(event, h11.Data):
            continue
        buffer += bytes(event.data)
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif not line and data:
                decoded = _json(b"\n".join(data))
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
