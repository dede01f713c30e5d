"""The connect flow of an MCP upstream that names its own authorization server (MCP authorization).

A binding with ``discover`` (an ``mcp`` connector with a ``url``, ``scheme: oauth2`` and no ``provider``)
learns everything at connect time:

1. the upstream is asked without credentials; its 401 challenge points at its protected resource
   metadata (RFC 9728), else the well-known locations are read (see ``_mcp_auth``);
2. the authorization server's RFC 8414 / OpenID metadata gives the endpoints; S256 PKCE is required and
   every endpoint must be https (or http on a loopback host the settings allow), and the server, its
   token and registration endpoints on public addresses (the hub's SSRF guard, see ``_mcp_auth``);
3. without a configured ``client_id``, toolbridge registers itself (RFC 7591, with the MCP SDK's request
   and response models) as a public client —
   ``token_endpoint_auth_method: none``, the redirect URI, ``authorization_code`` + ``refresh_token`` —
   and reuses that registration while the server and the redirect URI stay the same; a configured
   confidential client authenticates with ``client_secret_basic`` unless the server's
   ``token_endpoint_auth_methods_supported`` lists only ``client_secret_post`` (RFC 6749 §2.3.1);
4. the outcome (server, resource, scopes, client id and any client secret) travels with the pending
   authorization request (sealed in the vault next to its PKCE verifier) and, once the code exchange
   succeeded, is sealed as ``mcp-authorization:<connector>``, so refreshes in any process use the same
   server, client and ``resource``. An abandoned connect never replaces the stored registration.
   Nothing of it is logged except the client id, which is not a secret.

Discovery and registration are serialized per manager and connector (an ``anyio.Lock``); concurrent
connects in one process share a registration that has not been stored yet.
"""

from __future__ import annotations

import json
import logging
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx2
from pydantic import AnyUrl

from toolbridge._urlguard import RequestPin
from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._mcp_auth import (
    McpAuthorization,
    check_remote,
    discover_mcp_authorization,
    pin_remote,
    probe_challenge,
)
from toolbridge.credentials._providers import ProviderDef, ServerMetadata
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._vault import Vault
from toolbridge.errors import ConfigurationError, UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from toolbridge.credentials._manager import CredentialManager

__all__ = [
    "DiscoveredClient",
    "load_discovered",
    "prepare_discovered",
    "register_client",
    "store_discovered",
    "vault_name",
]

logger = logging.getLogger("toolbridge.credentials")
_GRANTS = ("authorization_code", "refresh_token")


def vault_name(connector: str) -> str:
    return f"mcp-authorization:{connector}"


@dataclass(frozen=True, slots=True)
class DiscoveredClient:
    """Where and as whom a discovered MCP connector authorizes: kept (sealed) in the vault."""

    issuer: str
    resource: str
    scopes: tuple[str, ...]
    client_id: str
    redirect_uri: str
    registered: bool
    """True when toolbridge registered the client itself (RFC 7591)."""
    auth_method: str = "none"
    client_secret: Secret | None = field(default=None, repr=False)
    secret_expires_at: float | None = None

    def to_secret(self) -> Secret:
        doc = {
            "issuer": self.issuer,
            "resource": self.resource,
            "scopes": list(self.scopes),
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "registered": self.registered,
            "auth_method": self.auth_method,
            "client_secret": self.client_secret.reveal() if self.client_secret else None,
            "secret_expires_at": self.secret_expires_at,
        }
        return Secret(json.dumps(doc))

    @classmethod
    def from_secret(cls, secret: Secret) -> DiscoveredClient:
        doc = json.loads(secret.reveal())
        client_secret = doc.get("client_secret")
        return cls(
            issuer=doc["issuer"],
            resource=doc["resource"],
            scopes=tuple(doc.get("scopes") or ()),
            client_id=doc["client_id"],
            redirect_uri=doc["redirect_uri"],
            registered=bool(doc.get("registered")),
            auth_method=doc.get("auth_method") or "none",
            client_secret=Secret(client_secret) if client_secret else None,
            secret_expires_at=doc.get("secret_expires_at"),
        )

    def bind(self, declared: AuthConfig) -> AuthConfig:
        """The configured binding completed with what was discovered (configured scopes and resource win)."""
        provider = ProviderDef(
            name=f"mcp:{urlsplit(self.issuer).netloc}",
            display_name=self.issuer,
            scope_separator=" ",
            issuer=self.issuer,
            token_auth_method=self.auth_method,
        )
        return replace(
            declared,
            provider=provider,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scopes=declared.scopes or self.scopes,
            resource=declared.resource or self.resource,
        )

    def reusable(self, issuer: str, redirect_uri: str, now: float) -> bool:
        expired = self.secret_expires_at is not None and 0 < self.secret_expires_at <= now
        return self.registered and self.issuer == issuer and self.redirect_uri == redirect_uri and not expired


async def load_discovered(vault: Vault, connector: str) -> DiscoveredClient | None:
    async with vault.database.transaction() as conn:
        found = await vault.read(conn, vault_name(connector))
    return DiscoveredClient.from_secret(found) if found is not None else None


@dataclass(slots=True)
class _Pending:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    registered: DiscoveredClient | None = None
    """A registration made for a connect not completed yet (reused by concurrent connects)."""


_pending: weakref.WeakKeyDictionary[CredentialManager, dict[str, _Pending]] = weakref.WeakKeyDictionary()


def _pending_for(manager: CredentialManager, connector: str) -> _Pending:
    return _pending.setdefault(manager, {}).setdefault(connector, _Pending())


async def prepare_discovered(
    manager: CredentialManager, connector: str, redirect_uri: str
) -> tuple[DiscoveredClient, AuthConfig]:
    """Discover the upstream's authorization server and register a client if needed.

    Nothing is stored or installed: the caller keeps the client with its pending authorization request
    and calls :func:`store_discovered` once the code exchange succeeded."""
    declared = manager.declared(connector)
    assert declared.discover is not None
    pending = _pending_for(manager, connector)
    async with pending.lock:
        chosen = await _choose(manager, declared, pending, connector, redirect_uri)
    return chosen, chosen.bind(declared)


async def _choose(
    manager: CredentialManager, declared: AuthConfig, pending: _Pending, connector: str, redirect_uri: str
) -> DiscoveredClient:
    assert declared.discover is not None
    client = manager.client
    challenge = await probe_challenge(client, declared.discover)
    found = await discover_mcp_authorization(
        client, declared.discover, challenge, guard=manager.url_guard, resolver=manager.resolver
    )
    server = replace(found.binding(client_id="-", redirect_uri=redirect_uri), discover=declared.discover)
    metadata = await manager.grants.metadata(server)  # discovered: its requests are pinned
    await _check_server(manager, metadata, found)
    issuer, now = found.authorization_server, manager.clock()
    if declared.client_id:
        method = "none"
        if declared.client_secret is not None:
            method = token_auth_method(metadata.token_auth_methods)
        return DiscoveredClient(
            issuer,
            found.resource,
            found.scopes,
            declared.client_id,
            redirect_uri,
            registered=False,
            auth_method=method,
            client_secret=declared.client_secret,
        )
    for known in (pending.registered, await load_discovered(manager.vault, connector)):
        if known is not None and known.reusable(issuer, redirect_uri, now):
            return replace(known, resource=found.resource, scopes=found.scopes)
    pin = pin_remote("the client registration endpoint", manager.url_guard, manager.resolver)
    pending.registered = await _register(client, metadata, found, connector, redirect_uri, now, pin)
    return pending.registered


async def store_discovered(
    manager: CredentialManager, connector: str, chosen: DiscoveredClient
) -> AuthConfig:
    """Seal ``chosen`` as the connector's authorization (after a successful code exchange) and use it."""
    pending = _pending_for(manager, connector)
    async with pending.lock:
        await manager.vault.put(vault_name(connector), chosen.to_secret())
        if pending.registered is not None and pending.registered.client_id == chosen.client_id:
            pending.registered = None
    return manager.install_binding(connector, chosen.bind(manager.declared(connector)))


def token_auth_method(supported: tuple[str, ...] | None) -> str:
    """How a configured confidential client authenticates at the token endpoint (RFC 6749 §2.3.1:
    servers must support HTTP Basic; the body is optional): basic unless only post is listed."""
    if supported is None or "client_secret_basic" in supported or "client_secret_post" not in supported:
        return "client_secret_basic"
    return "client_secret_post"


async def _check_server(
    manager: CredentialManager, metadata: ServerMetadata, found: McpAuthorization
) -> None:
    methods = metadata.code_challenge_methods
    if methods is None or "S256" not in methods:
        raise UpstreamError(
            f"the authorization server {found.authorization_server} does not advertise PKCE S256 "
            "(code_challenge_methods_supported)",
            hint="toolbridge refuses OAuth flows without S256 PKCE (MCP authorization requires it)",
        )
    guard, resolver = manager.url_guard, manager.resolver
    # the person's browser, not toolbridge, opens the authorization endpoint: its form is checked
    await check_remote(
        metadata.authorization_endpoint, "the authorization endpoint", guard, resolver, resolve=False
    )
    await check_remote(metadata.token_endpoint, "the token endpoint", guard, resolver)
    if metadata.registration_endpoint is not None:
        await check_remote(
            metadata.registration_endpoint, "the client registration endpoint", guard, resolver
        )


async def _register(
    client: httpx2.AsyncClient,
    metadata: ServerMetadata,
    found: McpAuthorization,
    connector: str,
    redirect_uri: str,
    now: float,
    pin: RequestPin,
) -> DiscoveredClient:
    issuer = found.authorization_server
    fix = (
        f"register toolbridge as an OAuth client at {issuer} (redirect URI {redirect_uri}, "
        f"PKCE) and set connectors.{connector}.connections.client_id"
    )
    if metadata.registration_endpoint is None:
        raise ConfigurationError(
            f"connector {connector!r} has no client_id and the authorization server {issuer} offers no "
            "dynamic client registration (no registration_endpoint in its metadata)",
            hint=fix,
        )
    registered = await register_client(
        client, metadata.registration_endpoint, redirect_uri, hint=fix, pin=pin
    )
    logger.info("registered OAuth client %s for %s at %s", registered.client_id, connector, issuer)
    return DiscoveredClient(
        issuer,
        found.resource,
        found.scopes,
        registered.client_id,
        redirect_uri,
        registered=True,
        auth_method=registered.auth_method,
        client_secret=registered.client_secret,
        secret_expires_at=registered.secret_expires_at,
    )


@dataclass(frozen=True, slots=True)
class Registration:
    client_id: str
    auth_method: str
    client_secret: Secret | None = field(default=None, repr=False)
    secret_expires_at: float | None = None


async def register_client(
    client: httpx2.AsyncClient,
    endpoint: str,
    redirect_uri: str,
    *,
    hint: str,
    pin: RequestPin | None = None,
) -> Registration:
    """RFC 7591: register a public client for the authorization-code flow with PKCE (the request and the
    answer are the MCP SDK's models: ``OAuthClientMetadata``, ``OAuthClientInformationFull``); ``pin``
    sends the request to the address it checks."""
    # the MCP SDK (~1 s to import) only when a client registers: every hub imports this module
    from mcp.client.auth import OAuthRegistrationError
    from mcp.client.auth.utils import handle_registration_response
    from mcp.shared.auth import OAuthClientMetadata

    wanted = OAuthClientMetadata(
        client_name="toolbridge",
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=list(_GRANTS),
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    body = wanted.model_dump(by_alias=True, mode="json", exclude_unset=True)  # only what is asked
    host = httpx2.URL(endpoint).host
    request = client.build_request("POST", endpoint, json=body, headers={"Accept": "application/json"})
    if pin is not None:
        await pin(request)
    try:
        response = await client.send(request, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(
            f"cannot reach the client registration endpoint of {host}: {type(exc).__name__}", sent=True
        ) from None
    if response.status_code not in (200, 201):
        try:
            doc: Any = response.json()
        except ValueError:
            doc = None
        raise _refused(doc, response.status_code, host, hint)
    try:
        info = await handle_registration_response(response)
    except OAuthRegistrationError:
        raise ConfigurationError(
            f"the client registration endpoint of {host} answered with no valid registration "
            "(RFC 7591 §3.2.1: a JSON object with a client_id)",
            hint=hint,
        ) from None
    if not info.client_id:
        raise ConfigurationError(
            f"the client registration endpoint of {host} answered without a client_id", hint=hint
        )
    secret, method = info.client_secret, info.token_endpoint_auth_method
    return Registration(
        client_id=info.client_id,
        auth_method=method or ("client_secret_basic" if secret else "none"),
        client_secret=Secret(secret) if secret else None,
        secret_expires_at=float(info.client_secret_expires_at) if info.client_secret_expires_at else None,
    )


def _refused(doc: Any, status: int, host: str, hint: str) -> ConfigurationError:
    error = str(doc.get("error") or "")[:64] if isinstance(doc, dict) else ""
    description = str(doc.get("error_description") or "")[:200] if isinstance(doc, dict) else ""
    detail = (f": {error}" if error else "") + (f" ({description})" if description else "")
    return ConfigurationError(
        f"the authorization server {host} refused to register toolbridge as a client{detail} [HTTP {status}]",
        hint=hint,
    )
