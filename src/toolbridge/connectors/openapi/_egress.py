"""Where one call's requests may go, and what they carry there.

Credentials go only to the **configured origin**: the origin of the operation's base URL (``base_url``, or
the document's server), or its upgrade from ``http`` to ``https`` on the same host. Redirects are followed
here, hop by hop (at most :data:`MAX_REDIRECTS`), not by httpx2 — httpx2 strips only ``Authorization`` on
a cross-origin redirect, so an API key in another header, the query or a cookie would follow. A redirect
or a next page to any other origin is sent with **no** credential (no secret applied, no auth flow), or
refused when the connector says ``cross_origin: refuse`` — and refused whatever it says when its URL holds
one of the connection's secret values (in any form :mod:`toolbridge._redact` masks): an upstream that
redirects to another host keeping the query string (``?api_key=…``), or that writes a token into a
``Location``, would otherwise have the hub carry the credential there in the URL itself.

Every URL an upstream's answer chose (a next page, a redirect) outside the configured origin, and the
configured origin itself when it came from a document fetched over the network, passes the SSRF guard
(:class:`toolbridge._urlguard.URLGuard`) and is pinned to the address that was checked. The operator's
``allow_hosts`` names internal hosts that may be reached anyway (a test upstream on 127.0.0.1).

The connector's own client keeps no cookies (:func:`no_cookie_jar`): it serves every principal's calls, so
a session cookie one call's answer set would otherwise ride along on another principal's calls.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass, replace
from functools import lru_cache
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Literal

import httpx2

from toolbridge._redact import redact_text
from toolbridge._trace import outgoing, upstream_status
from toolbridge._urlguard import Resolver, URLGuard, system_resolver
from toolbridge.connectors._base import Credentials
from toolbridge.connectors.openapi._request import Draft
from toolbridge.connectors.openapi._response import Page
from toolbridge.connectors.openapi._wire import FastWire, HttpxWire, Outgoing, Wire, is_redirect
from toolbridge.errors import BadRequest, UpstreamError

__all__ = [
    "MAX_REDIRECTS",
    "CrossOrigin",
    "Egress",
    "Route",
    "Signer",
    "no_cookie_jar",
    "open_wire",
    "origin",
]

MAX_REDIRECTS = 5
CrossOrigin = Literal["strip", "refuse"]
_UNSAFE = re.compile(r"[\x00-\x20\\]")
"""What the guard refuses anywhere in a URL (:meth:`URLGuard.check`): a control character, a space, ``\\``."""
_MAX_URL = 65_536  # httpx2 refuses longer URLs: those take the guard's whole path
_MAX_ALLOWED_ORIGINS = 256


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie: Cookie, request: urllib.request.Request) -> bool:
        return False


def no_cookie_jar() -> CookieJar:
    """A cookie jar that stores nothing an upstream sets (pass the jar itself: ``httpx2.Cookies`` copies)."""
    return CookieJar(policy=_NoCookies())


def open_wire(
    client: httpx2.AsyncClient | None, transport: httpx2.AsyncBaseTransport | None, timeout: float
) -> Wire:
    """A connector's wire: over its injected ``client`` (never closed by the wire); toolbridge's fast wire
    when it makes its own on asyncio; else an httpx2 client of its own (on ``transport``), closed with it."""
    if client is not None:
        return HttpxWire(client, owned=False)
    if transport is None and _on_asyncio():
        return FastWire(timeout)
    from toolbridge._httpclient import closing_transport

    own = httpx2.AsyncClient(
        transport=transport or closing_transport(),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=no_cookie_jar(),
    )
    return HttpxWire(own, owned=True)


def _on_asyncio() -> bool:
    import asyncio  # not at import: `tools list` runs no event loop

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # another anyio backend (trio)
        return False
    return True


def origin(url: str | httpx2.URL) -> tuple[str, str, int]:
    if isinstance(url, str):
        return _origin_of(_authority(url))
    return url.scheme, url.host.rstrip(".").lower(), url.port or _default_port(url.scheme)


def _authority(url: str) -> str:
    """``scheme://authority`` of ``url``: what its origin depends on (the authority ends at the first
    ``/`` after ``://``; a ``?`` or ``#`` before it parses the same in the prefix as in the whole URL)."""
    start = url.find("://")
    end = url.find("/", start + 3) if start >= 0 else -1
    return url if end < 0 else url[:end]


@lru_cache(maxsize=256)
def _origin_of(prefix: str) -> tuple[str, str, int]:
    """A call's origin is checked on every hop: parsed once per distinct ``scheme://authority``
    (exceptions are not cached: an invalid URL raises every time)."""
    parsed = httpx2.URL(prefix)
    return parsed.scheme, parsed.host.rstrip(".").lower(), parsed.port or _default_port(parsed.scheme)


def _same_site(trusted: tuple[str, str, int], target: tuple[str, str, int]) -> bool:
    """The configured origin, or its upgrade from http:80 to https:443 on the same host (as httpx2)."""
    upgrade = trusted == ("http", target[1], 80) and target[0] == "https" and target[2] == 443
    return target == trusted or upgrade


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


@dataclass(frozen=True, slots=True)
class Signer:
    """One call's credentials: its connection's httpx2 auth flow (None: the request goes without), and the
    forms of the secret values it applies (no URL to another origin may hold one)."""

    auth: httpx2.Auth | None = None
    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, credentials: Credentials) -> Signer:
        """The signer of a connection's credentials (their ``secrets`` when they tell them, as the hub's
        redaction reads them)."""
        return cls(credentials.auth, tuple(getattr(credentials, "secrets", ())))


@dataclass(frozen=True, slots=True)
class Route:
    """One call's configured origin, and whether that origin itself must pass the guard."""

    trusted: tuple[str, str, int]
    guard_trusted: bool = False


class Egress:
    def __init__(
        self,
        connector: str,
        *,
        allow_hosts: frozenset[str] = frozenset(),
        cross_origin: CrossOrigin = "strip",
        resolver: Resolver = system_resolver,
    ) -> None:
        self._connector = connector
        self._cross_origin = cross_origin
        self._resolve = resolver
        self._guard = URLGuard(
            refusal=f"connector {connector!r}: the upstream pointed to an address the hub does not reach",
            hint=f"if that host is intended, list it in connectors.{connector}.allow_hosts",
            allow_hosts=allow_hosts,
        )
        self._allowed: dict[str, tuple[str, str | None] | None] = {}

    async def send(
        self, wire: Wire, draft: Draft, route: Route, signer: Signer, tool: str, max_bytes: int
    ) -> Page:
        """The final answer, read (at most ``max_bytes`` of its body), redirects followed here."""
        for _ in range(MAX_REDIRECTS + 1):
            same = _same_site(route.trusted, self._origin(draft.url, tool))
            if not same and self._cross_origin == "refuse":
                raise self.refused(tool, "another origin")
            if not same and signer.secrets:
                self._refuse_carried(draft, signer.secrets, tool)
            out = await self._outgoing(draft, not same or route.guard_trusted, tool)
            outgoing(out.headers)  # the attempt's trace context (traceparent), when there is one
            reply = await wire.send(out, signer.auth if same else None, tool)
            if not is_redirect(reply):
                upstream_status(reply.status)
                return await reply.read(max_bytes)
            await reply.aclose()
            draft = _redirected(
                draft, reply.status, self._location(draft.url, reply.headers["location"], tool)
            )
        raise UpstreamError(
            f"connector {self._connector!r}: the upstream redirected more than {MAX_REDIRECTS} times",
            tool=tool,
            hint="check the connector's base_url; the service may be misconfigured",
        )

    async def _outgoing(self, draft: Draft, guarded: bool, tool: str) -> Outgoing:
        out = draft.outgoing()
        if not guarded:
            return out
        allowed = self._allowed_origin(out.url)
        if allowed is not None:  # passed as the guard would pass it, without parsing the URL again
            out.headers["Host"], out.sni = allowed
            return out
        try:
            url = self._guard.check(out.url)
            pinned, host = await self._guard.pin_async(url, self._resolve)
        except BadRequest as exc:
            raise self.refused(tool, "an internal address, or a name that does not resolve") from exc
        if pinned is not url:  # an allowed host is reached by its name: the URL stays as built
            out.url = str(pinned)
        out.headers["Host"] = host
        if url.scheme == "https":
            out.sni = url.host
        return out

    def _refuse_carried(self, draft: Draft, secrets: tuple[str, ...], tool: str) -> None:
        """Refuse a request to another origin whose URL holds a secret value of the call's connection."""
        url = draft.outgoing().url
        if redact_text(url, secrets) == url:
            return
        raise UpstreamError(
            f"connector {self._connector!r}: the upstream pointed to another origin with the connection's "
            "credential in the URL; no request was sent there",
            tool=tool,
            hint="toolbridge sends a connection's credentials only to the configured origin; if the API "
            f"moved there, point connectors.{self._connector} at it (base_url, or a GraphQL endpoint)",
        )

    def _allowed_origin(self, url: str) -> tuple[str, str | None] | None:
        """The Host header and TLS name for ``url`` when its origin is one the operator allowed (the guard
        then neither resolves nor rewrites it); None for every other URL, which takes the whole guard.

        The origin's checks (scheme, user info, host) are made once per ``scheme://authority``; what the
        guard refuses in the rest of a URL (control characters, ``\\``, excessive length) per call."""
        if len(url) > _MAX_URL or _UNSAFE.search(url) is not None:
            return None
        prefix = _authority(url)
        if prefix in self._allowed:
            return self._allowed[prefix]
        try:
            parsed = self._guard.check(prefix)
        except BadRequest:
            return None
        found = None
        if self._guard.allowed(parsed):
            host = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
            found = (host, parsed.host if parsed.scheme == "https" else None)
        if len(self._allowed) < _MAX_ALLOWED_ORIGINS:  # the origins an upstream names are not unbounded
            self._allowed[prefix] = found
        return found

    def _location(self, url: str, location: str, tool: str) -> httpx2.URL:
        """A redirect's target; one httpx2 cannot even parse (``0177.0.0.1``, a tab) is refused."""
        try:
            return httpx2.URL(url).join(location)
        except (httpx2.InvalidURL, ValueError):
            raise self.refused(tool, "an invalid URL") from None

    def _origin(self, url: str, tool: str) -> tuple[str, str, int]:
        try:
            return origin(url)
        except (httpx2.InvalidURL, ValueError):
            raise self.refused(tool, "an invalid URL") from None

    def refused(self, tool: str, where: str) -> UpstreamError:
        return UpstreamError(
            f"{self._guard.refusal} ({where}); no request was sent there",
            tool=tool,
            hint=self._guard.hint
            if where != "another origin"
            else f"connectors.{self._connector}.cross_origin is 'refuse'",
        )


def _redirected(draft: Draft, status: int, url: httpx2.URL) -> Draft:
    """The next hop's draft: the Location's URL; 303 (and 301/302 after a POST) become a body-less GET."""
    base, _, query = str(url).partition("?")
    to_get = status == 303 or (status in (301, 302) and draft.method == "POST")
    if not to_get:
        return replace(draft, url=base, query=[query] if query else [])
    headers = {k: v for k, v in draft.headers.items() if k.lower() not in ("content-type", "content-length")}
    return replace(
        draft,
        method="GET",
        url=base,
        query=[query] if query else [],
        headers=headers,
        content=None,
    )
