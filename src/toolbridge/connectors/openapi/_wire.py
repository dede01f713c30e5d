"""The wire a connector's requests travel: one request out, one answer back, transport errors translated.

Two wires, one contract (:class:`Wire`):

* :class:`AiohttpWire`, the default when the connector creates its own client on asyncio: aiohttp's client
  session, its C HTTP parser and its connection pool. Per request it costs about a third of the CPU of
  ``httpx2.AsyncClient.send`` (150 against 550 µs on the bench machine; docs/dependencies.md has the
  comparison), which is most of what a REST tool call costs the gateway.
* :class:`HttpxWire`, over an ``httpx2.AsyncClient``: the client or transport a caller injects (tests use
  ``httpx2.MockTransport``), and the connector's own client on another event loop than asyncio.

Redirects, credentials and the SSRF guard are not the wire's business (see :mod:`._egress`): a wire sends
exactly the :class:`Outgoing` it is given, never follows a redirect, never keeps a cookie and never reads
proxy settings from the environment. An ``httpx2.Auth`` flow is run on the request first (the
credentials layer's schemes all sign in one step; a flow that needs an answer, such as digest, is not
supported on the aiohttp wire: its first request goes unanswered to the flow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

import httpx2

from toolbridge.connectors.openapi._response import Page, transport_error
from toolbridge.errors import UpstreamUnavailable

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AiohttpWire", "HttpxWire", "Outgoing", "Reply", "Wire"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
Files = list[tuple[str, tuple[str | None, bytes, str]]]


@dataclass(slots=True)
class Outgoing:
    """One request as it goes out: the URL with its query, every header, and the body."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None = None
    data: dict[str, Any] | None = None
    files: Files | None = None
    sni: str | None = None  # the TLS server name when the URL carries a pinned address


class Reply(Protocol):
    """An answer whose head has arrived; :meth:`read` takes its body (and hands the connection back)."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self, max_bytes: int) -> Page: ...

    async def aclose(self) -> None: ...


class Wire(Protocol):
    async def send(self, out: Outgoing, auth: httpx2.Auth | None, tool: str) -> Reply: ...

    async def aclose(self) -> None: ...


def is_redirect(reply: Reply) -> bool:
    return reply.status in REDIRECTS and "location" in reply.headers


# -- httpx2 ----------------------------------------------------------------------------------------------


class HttpxWire:
    """Over an ``httpx2.AsyncClient``; closes it on :meth:`aclose` only when ``owned``."""

    def __init__(self, client: httpx2.AsyncClient, *, owned: bool) -> None:
        self._client = client
        self._owned = owned

    async def send(self, out: Outgoing, auth: httpx2.Auth | None, tool: str) -> Reply:
        url: str | httpx2.URL = out.url if "?" in out.url else _parsed(out.url)
        request = self._client.build_request(
            out.method, url, headers=out.headers, content=out.content, data=out.data, files=out.files
        )
        if out.sni is not None:
            request.extensions["sni_hostname"] = out.sni
        try:
            response = await self._client.send(request, stream=True, auth=auth, follow_redirects=False)
        except httpx2.HTTPError as exc:
            raise transport_error(exc, tool, out.url) from exc
        return _HttpxReply(response, tool, out.url)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()


@lru_cache(maxsize=256)
def _parsed(url: str) -> httpx2.URL:
    """A query-less URL, parsed once: httpx2's parsing (percent-encoding checks per component) is ~8%
    of a call's CPU, and calls of an operation mostly repeat a few URLs. ``httpx2.URL`` is immutable, so
    a parse can be shared; an invalid URL raises as before (exceptions are not cached). URLs with a query
    are not kept: an API key may be in it."""
    return httpx2.URL(url)


class _HttpxReply:
    __slots__ = ("_response", "_tool", "_url")

    def __init__(self, response: httpx2.Response, tool: str, url: str) -> None:
        self._response, self._tool, self._url = response, tool, url

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self, max_bytes: int) -> Page:
        response, parts, total = self._response, [], 0
        try:
            try:
                async for chunk in response.aiter_bytes():
                    parts.append(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        return Page.of(response, b"".join(parts)[:max_bytes], True)
                return Page.of(response, b"".join(parts), False)
            finally:
                await response.aclose()
        except httpx2.HTTPError as exc:
            raise transport_error(exc, self._tool, self._url) from exc

    async def aclose(self) -> None:
        await self._response.aclose()


# -- aiohttp ---------------------------------------------------------------------------------------------


class AiohttpWire:
    """aiohttp's client session on the running asyncio loop: pooled keep-alive connections (up to 100,
    idle ones closed after 5 s, as httpx2's defaults), ``timeout`` for connecting (pool wait included)
    and for every read, no cookies kept, no proxy or ``.netrc`` from the environment."""

    def __init__(self, timeout: float) -> None:
        import aiohttp

        self._errors = (aiohttp.ClientError, TimeoutError, ValueError)
        self._not_sent = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, aiohttp.InvalidURL)
        self._encoded = _yarl_url()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=5.0),
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
            ),
            trust_env=False,
            auto_decompress=True,
        )

    async def send(self, out: Outgoing, auth: httpx2.Auth | None, tool: str) -> Reply:
        if auth is not None or out.files is not None or out.data is not None:
            out = await _through_httpx2(out, auth)
        try:
            response = await self._session.request(
                out.method,
                self._encoded(out.url),
                headers=out.headers,
                data=out.content,
                allow_redirects=False,
                server_hostname=out.sni,
            )
        except self._errors as exc:
            raise self._unavailable(exc, tool, out.url) from exc
        return _AiohttpReply(self, response, tool, out.url)

    async def aclose(self) -> None:
        await self._session.close()

    def _unavailable(self, exc: BaseException, tool: str, url: str) -> UpstreamUnavailable:
        """The aiohttp twin of :func:`._response.transport_error` (same words, same ``sent`` rule: only a
        failure to connect is known not to have reached the upstream)."""
        where = url.partition("?")[0]
        late = isinstance(exc, TimeoutError)
        problem = "did not answer in time" if late else "cannot be reached"
        return UpstreamUnavailable(
            f"{tool!r}: {where} {problem}: {type(exc).__name__}: {exc}".rstrip(": "),
            sent=not isinstance(exc, self._not_sent),
            tool=tool,
            hint="try again later; check the connector's base_url and timeout if it persists",
        )


def _yarl_url() -> Any:
    """``yarl.URL(url, encoded=True)``: the URL goes out exactly as the connector built it (serializers
    percent-encode already; aiohttp would otherwise re-quote it)."""
    from yarl import URL

    @lru_cache(maxsize=256)
    def encoded(url: str) -> URL:
        return URL(url, encoded=True)

    def convert(url: str) -> URL:
        return encoded(url) if "?" not in url else URL(url, encoded=True)

    return convert


async def _through_httpx2(out: Outgoing, auth: httpx2.Auth | None) -> Outgoing:
    """The request as httpx2 would send it: its multipart encoding, and what the auth flow adds or
    changes (a header, a query parameter, a signature over the body). Only the first step of the flow."""
    request = httpx2.Request(
        out.method, out.url, headers=out.headers, content=out.content, data=out.data, files=out.files
    )
    if auth is not None:
        flow = auth.async_auth_flow(request)
        try:
            request = await flow.__anext__()
        finally:
            await flow.aclose()
    content = await request.aread()
    return Outgoing(
        request.method, str(request.url), dict(request.headers.multi_items()), content, sni=out.sni
    )


class _AiohttpReply:
    __slots__ = ("_response", "_tool", "_url", "_wire")

    def __init__(self, wire: AiohttpWire, response: aiohttp.ClientResponse, tool: str, url: str) -> None:
        self._wire, self._response, self._tool, self._url = wire, response, tool, url

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self, max_bytes: int) -> Page:
        response, parts, total = self._response, [], 0
        try:
            async for chunk in response.content.iter_any():
                parts.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    response.close()  # the rest stays unread: the connection cannot be reused
                    return self._page(b"".join(parts)[:max_bytes], True)
        except self._wire._errors as exc:
            response.close()
            raise self._wire._unavailable(exc, self._tool, self._url) from exc
        response.release()
        return self._page(b"".join(parts), False)

    def _page(self, content: bytes, truncated: bool) -> Page:
        response = self._response
        return Page(
            response.status, response.headers, str(response.url), content, truncated, response.reason or ""
        )

    async def aclose(self) -> None:
        self._response.close()
