"""The wire a connector's requests travel: one request out, one answer back, transport errors translated.

Two wires, one contract (:class:`Wire`):

* :class:`FastWire`, the default when the connector creates its own client on asyncio: toolbridge's own
  HTTP/1.1 (the MCP channel's fast path) on asyncio's transports, with its keep-alive pool. Per request it
  costs about two thirds of the CPU of aiohttp's client session, which it replaced, and an eighth of
  ``httpx2.AsyncClient.send`` (bench/http_clients.py; docs/dependencies.md has the comparison).
* :class:`HttpxWire`, over an ``httpx2.AsyncClient``: the client or transport a caller injects (tests use
  ``httpx2.MockTransport``), and the connector's own client on another event loop than asyncio.

Redirects, credentials and the SSRF guard are not the wire's business (see :mod:`._egress`): a wire sends
exactly the :class:`Outgoing` it is given, never follows a redirect, never keeps a cookie and never reads
proxy settings from the environment. An ``httpx2.Auth`` flow is run on the request first (the
credentials layer's schemes all sign in one step; a flow that needs an answer, such as digest, is not
supported on the fast wire: its first request goes unanswered to the flow).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import httpx2

from toolbridge.connectors.openapi._response import Page, transport_error

__all__ = ["FastWire", "HttpxWire", "Outgoing", "Reply", "Wire"]

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


# -- toolbridge's HTTP/1.1 ---------------------------------------------------------------------------------


class FastWire:
    """toolbridge's own HTTP/1.1 (:mod:`toolbridge.connectors._fastpath`, the MCP channel's fast path) on
    the running asyncio loop: pooled keep-alive connections, ``timeout`` for connecting and for every read,
    ``gzip``/``deflate`` answers decoded (asked for, as aiohttp asks), no cookies, no proxy. It sends what
    aiohttp's session sent (``Host``, ``Accept: */*`` and aiohttp's ``User-Agent`` unless the request has
    its own, ``Content-Length``, the body as ``application/octet-stream`` without a ``Content-Type``) at
    about half its CPU per request (bench/http_clients.py)."""

    def __init__(self, timeout: float) -> None:
        from toolbridge.connectors._fastpath import FastTransport

        self._agent = user_agent()
        self._transport = FastTransport(connect_timeout=timeout, read_timeout=timeout)

    async def send(self, out: Outgoing, auth: httpx2.Auth | None, tool: str) -> Reply:
        url, target = self._target(out.url, tool)
        if url.userinfo and auth is None:  # as aiohttp and httpx2: credentials in the URL are Basic auth
            auth = httpx2.BasicAuth(url.username, url.password)
        if auth is not None or out.files is not None or out.data is not None:
            out = await _through_httpx2(out, auth)  # (a flow may add to the query)
            url, target = self._target(out.url, tool)
        body = out.content or b""
        try:
            answer = await self._transport.open(
                out.method, url, self._head(out, url, body), body, request=None, target=target
            )
        except TimeoutError as exc:
            raise transport_error(httpx2.ReadTimeout(str(exc) or "no answer in time"), tool, out.url) from exc
        except httpx2.HTTPError as exc:
            raise transport_error(exc, tool, out.url) from exc
        return _FastReply(answer, tool, out.url)

    @staticmethod
    def _target(full: str, tool: str) -> tuple[httpx2.URL, str]:
        """The URL without its query (parsed once per URL) and the request target (path and query)."""
        base, mark, query = full.partition("?")
        try:
            url = _parsed(base)
        except httpx2.InvalidURL as exc:
            raise transport_error(httpx2.UnsupportedProtocol(str(exc)), tool, full) from exc
        return url, url.raw_path.decode("ascii") + mark + query

    def _head(self, out: Outgoing, url: httpx2.URL, body: bytes) -> list[tuple[str, str]]:
        given = {name.lower() for name in out.headers}
        head = [] if "host" in given else [("Host", _host_header(url))]
        # the body's framing is this wire's to say, once: a request that went through httpx2 (auth, a
        # multipart body) has its own content-length, and two make strict servers refuse it (Node: 400)
        head.extend((k, v) for k, v in out.headers.items() if k.lower() not in _FRAMING)
        if "accept" not in given:
            head.append(("Accept", "*/*"))
        if "accept-encoding" not in given:
            head.append(("Accept-Encoding", "gzip, deflate"))
        if "user-agent" not in given:
            head.append(("User-Agent", self._agent))
        if body or out.method in ("POST", "PUT", "PATCH"):
            if "content-type" not in given and body:
                head.append(("Content-Type", "application/octet-stream"))
            head.append(("Content-Length", str(len(body))))
        return head

    async def aclose(self) -> None:
        await self._transport.aclose()


_FRAMING = frozenset({"content-length", "transfer-encoding"})


@cache
def user_agent() -> str:
    """aiohttp's ``User-Agent`` (``Python/3.11 aiohttp/3.14.5``), the one upstreams have been seeing, made
    from the installed version: importing aiohttp for its string cost a serving process ~65 ms of CPU
    and ~10 MiB."""
    python = f"Python/{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        return f"{python} aiohttp/{version('aiohttp')}"
    except PackageNotFoundError:
        return python


def _host_header(url: httpx2.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


class _Fields(dict[str, str]):
    """An answer's header fields (names in lower case), looked up case-blind as httpx2's and aiohttp's."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class _FastReply:
    __slots__ = ("_answer", "_headers", "_tool", "_url")

    def __init__(self, answer: Any, tool: str, url: str) -> None:
        self._answer, self._tool, self._url = answer, tool, url
        self._headers = _Fields(answer.headers)

    @property
    def status(self) -> int:
        return int(self._answer.status_code)

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    async def read(self, max_bytes: int) -> Page:
        parts: list[bytes] = []
        total, truncated = 0, False
        inflate = _decoder(self._headers.get("content-encoding", ""))
        try:
            async for chunk in self._answer.aiter_bytes():
                if inflate is not None:
                    chunk = inflate.decompress(chunk, max_bytes - total + 1)
                    truncated = bool(inflate.unconsumed_tail)
                parts.append(chunk)
                total += len(chunk)
                if truncated or total > max_bytes:
                    return self._page(b"".join(parts)[:max_bytes], True)
            if inflate is not None:
                parts.append(inflate.flush())
        except TimeoutError as exc:
            raise transport_error(
                httpx2.ReadTimeout(str(exc) or "no answer in time"), self._tool, self._url
            ) from exc
        except (httpx2.HTTPError, zlib.error) as exc:
            error = exc if isinstance(exc, httpx2.HTTPError) else httpx2.DecodingError(str(exc))
            raise transport_error(error, self._tool, self._url) from exc
        finally:
            await self._answer.aclose()  # a connection read to its end goes back to the pool, else closed
        content = b"".join(parts)
        if len(content) > max_bytes:
            return self._page(content[:max_bytes], True)
        return self._page(content, False)

    def _page(self, content: bytes, truncated: bool) -> Page:
        status = self.status
        return Page(status, self._headers, self._url, content, truncated, _reason(status))

    async def aclose(self) -> None:
        await self._answer.aclose()


def _decoder(encoding: str) -> Any:
    """A decompressor for the answer's ``Content-Encoding`` (gzip, deflate: what is asked for), or None:
    any other coding is passed through as it came, as aiohttp does."""
    coding = encoding.strip().lower()
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Deflate()
    return None


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (some servers) raw; told apart by the first byte."""

    def __init__(self) -> None:
        self._inner: Any = None

    @property
    def unconsumed_tail(self) -> bytes:
        return self._inner.unconsumed_tail if self._inner is not None else b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            if not data:
                return b""
            raw = (data[0] & 0x0F) != 8  # a zlib header starts with CM = 8
            self._inner = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data, max_length))

    def flush(self) -> bytes:
        return bytes(self._inner.flush()) if self._inner is not None else b""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# -- shared ------------------------------------------------------------------------------------------------


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
