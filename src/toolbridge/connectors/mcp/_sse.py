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

The GET and the POSTs go through the connector's ``httpx2.AsyncClient`` (its proxy and TLS settings, its
transport seam); the stream is parsed by ``_eventstream``, as the streamable HTTP channel's are.
POSTs are an :class:`HttpChannel` aimed at the endpoint, each signed by its request's own credentials
(``auth=``). The GET, and the answers to the server's own requests, carry the channel's ``auth`` (the
session opener's).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from urllib.parse import urljoin, urlsplit

import anyio
import anyio.abc
import httpx2

from toolbridge import _jsonin as jsonin
from toolbridge.connectors.mcp._channel import Message, OnMessage, SessionExpired
from toolbridge.connectors.mcp._client import upstream_client
from toolbridge.connectors.mcp._config import HttpServer
from toolbridge.connectors.mcp._eventstream import sse_events
from toolbridge.connectors.mcp._http import HttpChannel, _RpcAnswer, checked
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable
from toolbridge.resilience import parse_retry_after

__all__ = ["SseChannel"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_ENDPOINT_TIMEOUT = 10.0
_MAX_EVENT = 16 * 1024 * 1024

Events = AsyncIterator[httpx2.ServerSentEvent]


class _StreamEnded(Exception):
    """The SSE stream ended or broke; the message says how."""


class _Poster(HttpChannel):
    """The POSTs to the endpoint: an :class:`HttpChannel` whose answers the SSE channel reads itself."""

    async def post(
        self,
        message: Message,
        headers: Mapping[str, str],
        on_request: Callable[[Message], Awaitable[None]],
        auth: httpx2.Auth | None,
    ) -> Message | None:
        """POST ``message``; the answer to it carried by the POST's own response (an inline response
        with its id, or a JSON-RPC error sent with an HTTP error status), else ``None``."""
        answer: Message | None = None
        try:
            async for item in self._exchange(message, headers, auth=auth):
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
    def __init__(
        self,
        server: HttpServer,
        task_group: anyio.abc.TaskGroup,
        on_message: OnMessage,
        *,
        client: httpx2.AsyncClient | None = None,
        auth: httpx2.Auth | None = None,
    ) -> None:
        """``client``: the connector's (None: one of its own, closed with the channel)."""
        parts = urlsplit(server.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{server.url!r} is not an http(s) URL", hint="give the SSE endpoint, e.g. https://host/sse"
            )
        self._server = server
        self._auth = auth
        self._tg = task_group
        self._on_message = on_message
        self._where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._origin = _origin(server.url)
        self._client = client
        self._own_client = client is None
        self._response: httpx2.Response | None = None
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
        return f"the MCP server at {self._where} (legacy SSE)"

    @property
    def endpoint(self) -> str | None:
        """Where messages are POSTed (the server's ``endpoint`` event), once started."""
        return self._endpoint_url

    async def start(self) -> None:
        """Open the stream and wait for the ``endpoint`` event (bounded in time)."""
        if self._client is None:
            self._client = upstream_client(self._server)
        response: httpx2.Response | None = None
        try:
            with anyio.fail_after(_ENDPOINT_TIMEOUT):
                response = await self._get(self._client)
                events = aiter(sse_events(response.aiter_bytes(), _MAX_EVENT))
                endpoint = await self._endpoint(events)
        except TimeoutError as exc:
            await _close(response)
            raise UpstreamUnavailable(
                f"{self.describe} sent no endpoint event within {_ENDPOINT_TIMEOUT:.0f} s",
                sent=False,
                hint="check that the URL is the server's SSE stream (often /sse)",
            ) from exc
        except BaseException:  # any other failure or a cancellation: close the stream, then re-raise
            await _close(response)
            raise
        self._response = response
        self._endpoint_url = endpoint
        self._poster = _Poster(
            HttpServer(url=endpoint, headers=self._server.headers, protocol="2025-11-25"),
            self._on_message,
            client=self._client,
            auth=self._auth,
        )
        await self._poster.start()
        self._alive = True
        self._tg.start_soon(self._read, response, events)

    async def aclose(self) -> None:
        self._alive = False
        self._ended = "the channel was closed"
        response, self._response = self._response, None
        poster, self._poster = self._poster, None
        self._fail_pending()
        await _close(response)
        if poster is not None:
            await poster.aclose()
        client, self._client = self._client, None
        if client is not None and self._own_client:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def forget_session(self) -> None:
        return None  # the stream is the session: a new one needs a new channel

    async def request(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> Message:
        pending = _Pending()
        self._pending[message["id"]] = pending
        try:
            with pending.scope:
                inline = await self._post(message, headers, auth)
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

    async def notify(
        self, message: Message, headers: Mapping[str, str], *, auth: httpx2.Auth | None = None
    ) -> None:
        await self._post(message, headers, auth)

    async def _post(
        self, message: Message, headers: Mapping[str, str], auth: httpx2.Auth | None
    ) -> Message | None:
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
            answer = await poster.post(message, headers, self._from_server, auth)
        except SessionExpired:
            self._alive = False
            self._ended = "the server forgot the session (HTTP 404)"
            raise
        return answer if "method" in message and "id" in message else None  # a reply's answer is no one's

    # -- the stream --------------------------------------------------------------------------------

    async def _get(self, client: httpx2.AsyncClient) -> httpx2.Response:
        """Send the GET; the response must be a 2xx ``text/event-stream``."""
        head = [("accept", "text/event-stream"), ("cache-control", "no-cache")]
        head += [(k.lower(), v) for k, v in self._server.headers.items()]
        try:
            request = client.build_request("GET", self._server.url, headers=checked(head))
        except ValueError as exc:
            raise ConfigurationError(f"cannot GET {self._server.url!r}: {exc}") from exc
        try:
            response = await client.send(request, auth=self._auth, stream=True)
        except httpx2.TransportError as exc:
            raise UpstreamUnavailable(
                f"cannot connect to {self.describe}: {exc or type(exc).__name__}",
                sent=False,
                hint="check that the server runs, and the URL, proxy and TLS settings",
            ) from exc
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code >= 300:
            await _close(response)
            raise UpstreamStatusError(
                f"{self.describe} answered the GET of its SSE stream with HTTP {response.status_code}",
                upstream_status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if content_type != "text/event-stream":
            await _close(response)
            raise UpstreamUnavailable(
                f"{self.describe} answered the GET with {content_type or 'no content type'}, "
                "not an SSE stream (text/event-stream)",
                sent=False,
                hint="check that the URL is the server's SSE stream (often /sse)",
            )
        return response

    async def _endpoint(self, events: Events) -> str:
        """The absolute URL of the first ``endpoint`` event, on the SSE URL's origin."""
        while True:
            try:
                kind, data = await _next(events)
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

    async def _read(self, response: httpx2.Response, events: Events) -> None:
        ended = "the server closed the SSE stream"
        try:
            while True:
                kind, data = await _next(events)
                if kind == "message":
                    await self._dispatch(data)
                else:
                    logger.debug("%s sent a %r event; ignored", self.describe, kind)
        except _StreamEnded as exc:
            ended = str(exc)
        finally:
            if response is self._response:
                self._alive = False
                self._ended = ended
                self._fail_pending()
                self._response = None
                await _close(response)

    async def _dispatch(self, data: str) -> None:
        try:
            decoded = jsonin.loads(data.encode())  # json.loads: RecursionError, ending the listener
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
            await self._post(reply, {}, self._auth)
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


async def _next(events: Events) -> tuple[str, str]:
    """The next event with data (``(type, data)``); :class:`_StreamEnded` once the stream is over."""
    while True:
        try:
            event = await anext(events)
        except StopAsyncIteration:
            raise _StreamEnded("the server closed the SSE stream") from None
        except httpx2.SSEError as exc:
            raise _StreamEnded(f"{exc}; toolbridge ended the stream") from exc
        except httpx2.TransportError as exc:
            raise _StreamEnded(f"the SSE stream broke ({exc or type(exc).__name__})") from exc
        if event.data:
            return event.event, event.data


async def _close(response: httpx2.Response | None) -> None:
    if response is not None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await response.aclose()
