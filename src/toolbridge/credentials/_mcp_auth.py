"""MCP authorization discovery: an upstream's 401 → its protected resource metadata → an OAuth binding.

An MCP server that wants OAuth answers 401 with ``WWW-Authenticate: Bearer resource_metadata="…"``
(:func:`probe_challenge` asks it without credentials). That document (RFC 9728; without a challenge, at
the well-known location for the upstream's path, then at the origin's root) names the resource and its
authorization servers; the first one's metadata (RFC 8414, read later by the connect flow) gives the
endpoints. Scopes are the challenge's ``scope``, else the document's ``scopes_supported``. The result is
an :class:`AuthConfig` for the usual connect flow: authorization code + PKCE S256, with the RFC 8707
``resource`` parameter. The pinned MCP SDK does the protocol's share: the order of the metadata
locations (``build_protected_resource_metadata_discovery_urls``), the document's model
(``ProtectedResourceMetadata``), the scope choice (``get_client_metadata_scopes``) and whether the
document is for this upstream (``check_resource_allowed``); toolbridge adds the guards below.

SSRF-safe by construction: the metadata document is fetched only from the configured upstream's own
origin, redirects are not followed, and every URL must be ``https://`` (or ``http://`` on a loopback
host). A URL a remote party chose — the authorization server, its token and registration endpoints — also
goes through the hub's SSRF guard (:func:`check_remote`): its host is resolved and refused unless every
address is public; loopback only when the guard allows it (``credentials.oauth_allow_loopback``: any port;
or one ``host:port`` named in ``credentials.oauth_allow_hosts``, http too), other private hosts only when
an operator names them (``credentials.oauth_allow_hosts``). Each request sent
there is checked again and connects to the address that was checked (:func:`pin_remote`), so a second DNS
answer (rebinding to 127.0.0.1 or 169.254.169.254) never reaches a socket.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2
import pydantic

from toolbridge._urlguard import RequestPin, Resolver, URLGuard, system_resolver
from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._providers import ProviderDef
from toolbridge.errors import BadRequest, ConfigurationError, UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from mcp.shared.auth import ProtectedResourceMetadata

__all__ = [
    "OAUTH_GUARD",
    "McpAuthorization",
    "challenge_params",
    "check_remote",
    "discover_mcp_authorization",
    "pin_remote",
    "probe_challenge",
    "require_safe",
    "resource_metadata_url",
]

_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_MAX_DOCUMENT = 64 * 1024
OAUTH_GUARD = URLGuard(
    refusal="is not on a public address",
    hint="toolbridge sends OAuth requests only to public servers; an operator can allow a host with "
    "credentials.oauth_allow_hosts (or credentials.oauth_allow_loopback for local development)",
)
"""The default guard for URLs an OAuth server or an MCP upstream hands toolbridge: public addresses only."""


@dataclass(frozen=True, slots=True)
class McpAuthorization:
    """What an MCP upstream's protected resource metadata says about authorizing to it."""

    resource: str
    authorization_server: str
    scopes: tuple[str, ...]

    def binding(
        self, *, client_id: str, redirect_uri: str, scopes: tuple[str, ...] | None = None
    ) -> AuthConfig:
        """An OAuth binding for the connect flow (endpoints read from the server's RFC 8414 metadata)."""
        provider = ProviderDef(
            name=f"mcp:{urlsplit(self.authorization_server).netloc}",
            display_name=self.authorization_server,
            scope_separator=" ",
            issuer=self.authorization_server,
        )
        return AuthConfig(
            scheme="oauth2",
            provider=provider,
            client_id=client_id,
            scopes=self.scopes if scopes is None else scopes,
            redirect_uri=redirect_uri,
            resource=self.resource,
        )


def challenge_params(www_authenticate: str) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (names lower-cased); empty for any other scheme."""
    scheme, _, rest = www_authenticate.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    found: dict[str, str] = {}
    for name, quoted, bare in _PARAM.findall(rest):
        found.setdefault(name.lower(), quoted.replace('\\"', '"') if quoted else bare)
    return found


def resource_metadata_url(www_authenticate: str) -> str | None:
    """The ``resource_metadata`` parameter of a ``Bearer`` challenge, if there is one."""
    return challenge_params(www_authenticate).get("resource_metadata") or None


async def probe_challenge(client: httpx2.AsyncClient, upstream_url: str) -> str | None:
    """Send the upstream an MCP ``initialize`` without credentials; its 401 challenge, if it sends one."""
    require_safe(upstream_url, "the MCP upstream")
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "toolbridge", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    try:
        response = await client.post(upstream_url, json=body, headers=headers, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(
            f"cannot reach the MCP upstream {upstream_url}: {type(exc).__name__}", sent=False
        ) from exc
    if response.status_code != 401:
        return None
    return response.headers.get("www-authenticate")


async def discover_mcp_authorization(
    client: httpx2.AsyncClient,
    upstream_url: str,
    www_authenticate: str | None,
    *,
    guard: URLGuard = OAUTH_GUARD,
    resolver: Resolver = system_resolver,
) -> McpAuthorization:
    """Read the protected resource metadata of ``upstream_url`` (from its 401 challenge, else the
    well-known locations) and check it names this upstream and a safe authorization server (``guard``
    and ``resolver`` check the server's address: see :func:`check_remote`)."""
    # the MCP SDK (~1 s to import) only when an upstream is discovered: every hub imports this module
    from mcp.client.auth.utils import (
        build_protected_resource_metadata_discovery_urls,
        get_client_metadata_scopes,
    )

    require_safe(upstream_url, "the MCP upstream")
    params = challenge_params(www_authenticate or "")
    candidates = build_protected_resource_metadata_discovery_urls(
        params.get("resource_metadata"), upstream_url
    )
    for url in candidates:
        require_safe(url, "the protected resource metadata", remote=True)
        if _origin(url) != _origin(upstream_url):
            raise UpstreamError(
                f"the upstream points its resource metadata at another origin ({_origin(url)})",
                hint="toolbridge reads resource metadata only from the upstream's own origin",
            )
    for number, url in enumerate(candidates, 1):
        doc = await _fetch(client, url, missing_ok=number < len(candidates))
        if doc is not None:
            metadata = _parse(doc, upstream_url, url)
            issuer = str(metadata.authorization_servers[0])
            await check_remote(issuer, "the authorization server", guard, resolver)
            scope = get_client_metadata_scopes(params.get("scope"), metadata) or ""
            return McpAuthorization(str(metadata.resource), issuer, tuple(scope.split()))
    raise AssertionError("unreachable: the last candidate raises when missing")


def _parse(doc: dict[str, Any], upstream_url: str, url: str) -> ProtectedResourceMetadata:
    from mcp.shared.auth import ProtectedResourceMetadata
    from mcp.shared.auth_utils import check_resource_allowed

    try:
        metadata = ProtectedResourceMetadata.model_validate(doc)
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the document"
        raise UpstreamError(
            f"the resource metadata at {url} is not valid RFC 9728 metadata ({where}: {problem['msg']})",
            hint="the upstream must publish its resource and at least one authorization server",
        ) from None
    if not check_resource_allowed(
        requested_resource=upstream_url, configured_resource=str(metadata.resource)
    ):
        raise UpstreamError(
            f"the resource metadata at {url} is for {str(metadata.resource)!r}, not {upstream_url!r}",
            hint="RFC 9728 §3.3: the metadata must name the resource it was fetched for",
        )
    return metadata


async def _fetch(client: httpx2.AsyncClient, url: str, *, missing_ok: bool) -> dict[str, Any] | None:
    try:
        response = await client.get(url, headers={"Accept": "application/json"}, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(
            f"cannot read the resource metadata at {url}: {type(exc).__name__}", sent=True
        ) from exc
    if response.status_code == 404 and missing_ok:
        return None
    if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT:
        raise UpstreamError(
            f"the resource metadata at {url} answered HTTP {response.status_code}",
            hint="the upstream must publish RFC 9728 protected resource metadata",
        )
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UpstreamError(f"the resource metadata at {url} is not a JSON object")
    return doc


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def require_safe(url: str, what: str, *, remote: bool = False) -> None:
    """Refuse any URL of an OAuth flow that is not https (or http on a loopback host): a
    :class:`ConfigurationError` for the operator's URL, an :class:`UpstreamError` (HTTP 502) for one a
    remote party handed toolbridge (``remote``)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    error = UpstreamError if remote else ConfigurationError
    raise error(
        f"{what} must be https:// (or http:// on a loopback host), not {url!r}",
        hint="toolbridge never sends an OAuth flow over plain HTTP to another host",
    )


async def check_remote(
    url: str, what: str, guard: URLGuard, resolver: Resolver, *, resolve: bool = True
) -> None:
    """Refuse a URL a remote party handed toolbridge during OAuth discovery or registration unless it is
    https (http only on a loopback host the guard allows) and — with ``resolve`` — every address its
    host resolves to is public (or the guard allows it). Nothing is sent to a refused URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and _loopback(host) and not _loopback_allowed(url, guard):
        raise _remote_refused(what, url, guard)
    require_safe(url, what, remote=True)
    try:
        parsed = guard.check(url)
        if resolve:
            await guard.pin_async(parsed, resolver)
    except BadRequest:
        raise _remote_refused(what, url, guard) from None


def pin_remote(what: str, guard: URLGuard, resolver: Resolver) -> RequestPin:
    """What a request to a URL a remote party chose goes through just before it is sent: the rules of
    :func:`check_remote`, and the request pointed at the address they checked (the guard's
    :meth:`~toolbridge._urlguard.URLGuard.pin_request`; an allowed host keeps its name)."""

    async def pin(request: httpx2.Request) -> None:
        url = str(request.url)
        await check_remote(url, what, guard, resolver, resolve=False)
        try:
            await guard.pin_request(request, resolver)
        except BadRequest:
            raise _remote_refused(what, url, guard) from None

    return pin


def _loopback_allowed(url: str, guard: URLGuard) -> bool:
    """Plain http to a loopback host: with ``oauth_allow_loopback`` (any port), or to the one origin an
    ``oauth_allow_hosts`` entry names with its port (``127.0.0.1:18080``)."""
    if guard.allow_loopback:
        return True
    try:
        return guard.names_origin(httpx2.URL(url))
    except (httpx2.InvalidURL, ValueError):
        return False


def _remote_refused(what: str, url: str, guard: URLGuard) -> UpstreamError:
    """A URL a remote party chose, refused: the upstream's (or its server's) doing, HTTP 502."""
    return UpstreamError(f"{what} {url!r} {guard.refusal}", hint=guard.hint)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
