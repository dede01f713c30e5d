"""A remote MCP server over streamable HTTP, on the connector's pooled ``httpx2.AsyncClient``.

Each request is one POST whose answer is JSON or an SSE stream carrying notifications and, last, the
response. The client (see ``_client``) keeps connections alive across calls and agents and honours the
connector's proxy, CA and client certificate; its transport is the seam tests replace. A connection
abandoned mid-answer (a cancelled call) is closed by the client, never reused. The ``Mcp-Session-Id`` the
server gives at ``initialize`` is sent on every request; a 404 for it raises :class:`SessionExpired`.

Streams the server ends early are followed, as the SDK's client does: a POST whose SSE answer closes
before the response (SSE polling, SEP-1699) is resumed with a ``GET`` carrying ``Last-Event-ID``, after
the server's ``retry`` delay; and a handshake-era session holds the session's ``GET`` stream open
(:meth:`HttpChannel.hold_stream`), reconnecting from the last event id, so the server's own log
messages, resource updates and list changes arrive. SSE is parsed by ``_eventstream`` (the legacy SSE
channel uses the same parser). On the fast path, a request without credentials is handed to the fast
transport as its header list and body, and its answer read as it comes, without httpx2's request and
response objects around them (they cost the proxy more than the fast path itself: bench/README.md).

Credentials are per request, not per channel: each request carries the ``httpx2.Auth`` flow of the
connection it is made for (``auth=``, handed to the client per request as the OpenAPI connector does), so
a token refreshed after a 401 is on the very next attempt. The channel's own ``auth`` (the session
opener's) holds the session's ``GET`` stream and ends the session. The agent's own token is never one of
them. Every header value is checked before sending (no control characters, ASCII only).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
import httpx2

from toolbridge import _jsonin as jsonin
from toolbridge._trace import outgoing
from toolbridge.connectors._fastpath import FastTransport
from toolbridge.connectors.mcp._channel import Message, OnMessage, SessionExpired
from toolbridge.connectors.mcp._client import tls_context, upstream_client
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._eventstream import sse_events
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable
from toolbridge.resilience import parse_retry_after

__all__ = ["HttpChannel", "sse_messages"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_MAX_BODY = 64 * 1024 * 1024
_MAX_EVENT = 16 * 1024 * 1024
_RETRY = 1.0
"""Seconds before following a stream again when the server named no ``retry`` (the SDK's default)."""
_RESUME_ATTEMPTS = 2
"""Resumptions in a row that may fail (or bring nothing new) before a call gives up (the SDK's number)."""
_MAX_STREAM_DELAY = 30.0
_ACCEPT = "application/json, text/event-stream"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*|")
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.ProxyError, httpx2.UnsupportedProtocol)
"""Transport errors that mean the request never left: anything else may have reached the server."""


class Answer(Protocol):
    """An answer whose head has arrived: an ``httpx2.Response``, or the fast path's ``FastAnswer``."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class HttpChannel:
    def __init__(
        self,
        server: HttpServer,
        on_message: OnMessage,
        *,
        client: httpx2.AsyncClient | None = None,
        auth: httpx2.Auth | None = None,
        fast: FastTransport | None = None,
    ) -> None:
        """``client``: the connector's (None: one of its own, built from ``server`` and closed with the
        channel); ``auth``: the credentials of the session's opener (its ``GET`` stream and its end);
        ``fast``: the connector's fast-path transport, which requests then go to directly (no client
        machinery: redirects, cookies and auth flows that need a response are not used there anyway)."""
        parts = urlsplit(server.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{server.url!r} is not an http(s) URL", hint="give the MCP endpoint, e.g. https://host/mcp"
            )
        self._server = server
        self._on_message = on_message
        self._auth = auth
        self._where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._url = server.url
        self._target = httpx2.URL(server.url)  # parsed once: requests share it
        self._host = httpx2.Request("GET", self._target).headers["host"]
        base = [("accept", _ACCEPT), ("content-type", "application/json")]
        self._base_headers = base + [(k.lower(), v) for k, v in server.headers.items()]
        try:
            checked(self._base_headers)
        except ValueError as exc:
            raise ConfigurationError(
                f"cannot send requests to {server.url!r}: {exc}",
                hint="header names are tokens and values printable ASCII",
            ) from exc
        self._client = client
        self._own_client = client is None
        self._fast = fast
        self._session_id: str | None = None
        self._closed = False
        self._listening: anyio.CancelScope | None = None

    @property
    def alive(self) -> bool:
        return not self._closed

    @property
    def describe(self) -> str:
        return f"the MCP server at {self._where}"

    @property
    def session_id(self) -> str | None:
        return self._session_id

    async def start(self) -> None:
        if self._client is None:
            if self._server.fast:
                self._fast = FastTransport(tls_context(self._server))
            self._client = upstream_client(self._server, transport=self._fast)
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        if self._listening is not None:
            self._listening.cancel()
        if self._session_id is not None:
            await self._terminate()
        client, self._client = self._client, None
        if client is not None and self._own_client:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def forget_session(self) -> None:
        self._session_id = None

    async def request(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> Message:
        response: Message | None = None
        events = _Events()
        try:
            async for item in self._exchange(message, headers, events, auth):
                response = await self._handled(item, message, headers, auth) or response
        except _RpcAnswer as answer:
            return {**answer.message, "id": message["id"]}
        if response is None and events.last_id is not None:  # closed early: the server polls
            response = await self._resumed(message, headers, events, auth)
        if response is None:
            raise UpstreamUnavailable(
                f"{self.describe} ended its answer without a response to {message.get('method')!r}",
                sent=True,
            )
        return response

    async def notify(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> None:
        with contextlib.suppress(_RpcAnswer):
            async for item in self._exchange(message, headers, auth=auth):
                if "method" in item:
                    await self._on_message(item)

    async def _handled(
        self, item: Message, request: Message, headers: Mapping[str, str], auth: httpx2.Auth | None
    ) -> Message | None:
        """``item`` if it is the response to ``request``; a server message is handed on (and answered)."""
        if "method" in item:
            reply = await self._on_message(item)
            if reply is not None and "id" in item:
                await self.notify({"jsonrpc": "2.0", "id": item["id"], **reply}, headers, auth=auth)
            return None
        return item if item.get("id") == request.get("id") else None

    async def _resumed(
        self, message: Message, headers: Mapping[str, str], events: _Events, auth: httpx2.Auth | None
    ) -> Message | None:
        """Follow a POST's SSE answer the server closed before the response: ``GET`` it again from the last
        event id after the server's ``retry`` delay, until the response comes; give up after
        :data:`_RESUME_ATTEMPTS` attempts in a row that fail or bring nothing new."""
        failures = 0
        while failures < _RESUME_ATTEMPTS:
            await anyio.sleep(events.retry if events.retry is not None else _RETRY)
            before = events.last_id
            try:
                async for item in self._stream(headers, events, auth):
                    found = await self._handled(item, message, headers, auth)
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
        """Keep the session's ``GET`` stream open (handshake era) as the session's opener: what the
        server sends on it reaches ``on_message``. It ends with the channel, its session, or a 405.
        ``opened`` is called each time the stream is (re)opened: what changed while it was not is lost
        (a server drops what it cannot send), so the caller lists again."""
        tg.start_soon(self._listen, dict(headers), opened)

    async def _listen(self, headers: Mapping[str, str], opened: Callable[[], object]) -> None:
        events, session, delay = _Events(), self._session_id, 0.0
        with anyio.CancelScope() as self._listening:
            while not self._closed and session is not None and self._session_id == session:
                try:
                    async for item in self._stream(headers, events, self._auth, opened):
                        delay = 0.0
                        await self._handled(item, {}, headers, self._auth)
                except _NoStream as exc:  # 405: no GET stream here; 404 or 400: the session ended
                    logger.info("%s keeps no stream for its session: %s", self.describe, exc)
                    return
                except UpstreamUnavailable as exc:
                    delay = min(max(delay * 2, _RETRY), _MAX_STREAM_DELAY)
                    logger.debug("%s: the session's stream failed: %s", self.describe, exc)
                await anyio.sleep(delay or (events.retry if events.retry is not None else _RETRY))

    # -- one HTTP exchange -------------------------------------------------------------------------

    async def _exchange(
        self,
        message: Message,
        headers: Mapping[str, str],
        events: _Events | None = None,
        auth: httpx2.Auth | None = None,
    ) -> AsyncIterator[Message]:
        body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        head = self._head(self._base_headers, headers)
        # a tools/call may have taken effect on a connection that broke before its answer: never resent
        replayable = message.get("method") != "tools/call"
        async with self._send("POST", head, auth, body, replayable=replayable) as response:
            async for item in self._read(response, events):
                yield item

    def _head(self, base: Iterable[tuple[str, str]], extra: Mapping[str, str]) -> list[tuple[str, str]]:
        """``base`` (of the base headers, checked when the channel was made) and the request's own
        headers, checked here."""
        added = list(extra.items())
        if self._session_id is not None:
            added.insert(0, ("mcp-session-id", self._session_id))
        traced: dict[str, str] = {}
        outgoing(traced)  # the attempt's trace context (traceparent), when a call's attempt sends this
        added.extend(traced.items())
        try:
            return [*base, *checked(added)]
        except ValueError as exc:
            raise UpstreamUnavailable(
                f"cannot send a request to {self.describe}: {exc}",
                sent=False,
                hint="check the connector's headers and the connection's credentials",
            ) from exc

    def _send(
        self,
        method: str,
        head: list[tuple[str, str]],
        auth: httpx2.Auth | None,
        body: bytes = b"",
        *,
        replayable: bool | None = None,
    ) -> _Exchange:
        """One request on the client, its answer streamed (``async with``); transport failures as
        ``UpstreamUnavailable`` (``sent`` unless the request cannot have left)."""
        return _Exchange(self, method, head, auth, body, replayable)

    async def _answer(
        self,
        method: str,
        head: list[tuple[str, str]],
        auth: httpx2.Auth | None,
        body: bytes,
        replayable: bool | None,
    ) -> Answer:
        client = self._client
        if client is None:
            raise UpstreamUnavailable(f"{self.describe}: the channel is closed", sent=False)
        try:
            if self._fast is not None and auth is None:
                head = [("host", self._host), *head]
                if body:
                    head.append(("content-length", str(len(body))))
                return await self._fast.open(method, self._target, head, body, replayable=replayable)
            request = httpx2.Request(
                method,
                self._target,
                headers=head,
                content=body or None,
                extensions={"replayable": replayable},
            )
            if self._fast is not None:
                return await self._fast.handle_async_request(_signed(request, auth))
            return await client.send(request, auth=auth, stream=True)
        except httpx2.TransportError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: httpx2.TransportError) -> UpstreamUnavailable:
        if isinstance(exc, _NOT_SENT):
            return UpstreamUnavailable(
                f"cannot connect to {self.describe}: {exc or type(exc).__name__}",
                sent=False,
                hint="check that the server runs, and the URL, proxy and TLS settings",
            )
        what = str(exc) or type(exc).__name__
        if isinstance(exc, httpx2.TimeoutException):
            return UpstreamUnavailable(f"{self.describe} timed out during the request ({what})", sent=True)
        # (a bare exception name, such as BrokenResourceError, said nothing of what happened)
        return UpstreamUnavailable(f"{self.describe} disconnected during the request ({what})", sent=True)

    async def _stream(
        self,
        headers: Mapping[str, str],
        events: _Events,
        auth: httpx2.Auth | None,
        opened: Callable[[], object] | None = None,
    ) -> AsyncIterator[Message]:
        """The messages of one ``GET`` of the session's SSE stream, from ``events.last_id`` when set."""
        base = [(k, v) for k, v in self._base_headers if k not in ("accept", "content-type")]
        base.append(("accept", "text/event-stream"))
        if events.last_id is not None:
            base.append(("last-event-id", events.last_id))
        async with self._send("GET", self._head(base, headers), auth) as response:
            content_type = _content_type(response)
            if response.status_code >= 300 or content_type != "text/event-stream":
                raise _NoStream(f"HTTP {response.status_code} ({content_type or 'no content type'})")
            if opened is not None:
                opened()
            async for item in sse_messages(response, events):
                yield item

    async def _read(self, response: Answer, events: _Events | None) -> AsyncIterator[Message]:
        headers, status = response.headers, response.status_code
        if status < 300 and "mcp-session-id" in headers:
            self._session_id = headers["mcp-session-id"]
        if _content_type(response) == "text/event-stream" and status < 300:
            async for item in sse_messages(response, events or _Events()):
                yield item
            return
        body = await _body(response)
        if status == 202:
            return
        if 300 <= status < 400:
            raise self._redirected(status, headers.get("location", ""))
        if status >= 400:
            self._raise_status(status, headers, body)
        decoded = _json(body)
        if isinstance(decoded, dict):
            yield decoded
        elif decoded is not None:
            raise UpstreamUnavailable(
                f"{self.describe} answered with JSON that is not one message", sent=True
            )

    def _redirected(self, status: int, location: str) -> UpstreamStatusError:
        """A redirect is not followed (the MCP transport has none; a POST's body would be lost or resent):
        the error names where it pointed, by origin only (its path and query may carry anything)."""
        parts = urlsplit(location)
        where = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "its own origin"
        return UpstreamStatusError(
            f"{self.describe} redirected (HTTP {status}) to {where}: toolbridge does not follow an MCP "
            "upstream's redirects",
            upstream_status=status,
            hint="set the connector's url to the address the server redirects to",
        )

    def _raise_status(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        text = body.decode(errors="replace")
        if self._session_id is not None and (status == 404 or (status == 400 and "session" in text.lower())):
            raise SessionExpired(f"HTTP {status}")
        decoded = _json(body)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict) and status != 401:
            raise _RpcAnswer(decoded)
        raise UpstreamStatusError(
            f"{self.describe} answered HTTP {status}",
            upstream_status=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
            body=text[:500] or None,
        )

    async def _terminate(self) -> None:
        """DELETE the session, politely and briefly (the server may already have dropped it)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                async with self._send("DELETE", self._head(self._base_headers, {}), self._auth):
                    pass
            except UpstreamUnavailable:
                pass
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


def checked(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers``, refusing any name or value that could split or bend the request (``ValueError``)."""
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            raise ValueError(f"cannot send the header {name[:40]!r}: a control or non-ASCII character")
    return headers


def _signed(request: httpx2.Request, auth: httpx2.Auth | None) -> httpx2.Request:
    """``request`` as ``auth`` signs it (the flow's first request; flows that need an answer, such as
    digest auth, are not run further)."""
    if auth is None:
        return request
    flow = auth.sync_auth_flow(request)
    try:
        return next(flow)
    finally:
        flow.close()


def _content_type(response: Answer) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


async def _body(response: Answer) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        size += len(piece)
        if size > _MAX_BODY:
            raise httpx2.ReadError(f"the answer is over {_MAX_BODY} bytes")
        chunks.append(piece)
    return b"".join(chunks)


async def sse_messages(response: Answer, events: _Events | None = None) -> AsyncIterator[Message]:
    """The JSON-RPC messages of an SSE answer (the ``data:`` of its events); ``id:`` and ``retry:`` are
    kept in ``events`` (an event's id counts once the event is complete)."""
    async for event in sse_events(response.aiter_bytes(), _MAX_EVENT):
        if events is not None:
            if event.id:
                events.last_id = event.id
            if event.retry is not None:
                events.retry = event.retry / 1000
        decoded = _json(event.data.encode())
        if isinstance(decoded, dict):
            yield decoded


def _json(body: bytes) -> object:
    if not body.strip():
        return None
    try:
        return jsonin.loads(body)  # json.loads raised RecursionError at 5,000 levels, past every handler
    except ValueError:
        return None


class _Exchange:
    """``async with channel._send(...) as answer``: the answer, closed when the block ends; a transport
    failure while it is read becomes ``UpstreamUnavailable``. (A class: contextlib's generator-based
    manager cost about ten more calls per request on the proxy's path.)"""

    __slots__ = ("_args", "_channel", "_response")

    def __init__(
        self,
        channel: HttpChannel,
        method: str,
        head: list[tuple[str, str]],
        auth: httpx2.Auth | None,
        body: bytes,
        replayable: bool | None,
    ) -> None:
        self._channel = channel
        self._args = (method, head, auth, body, replayable)
        self._response: Answer | None = None

    async def __aenter__(self) -> Answer:
        self._response = await self._channel._answer(*self._args)
        return self._response

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._response is not None
        with anyio.CancelScope(shield=True):
            await self._response.aclose()
        if isinstance(exc, httpx2.TransportError):
            raise self._channel._unavailable(exc) from exc
