"""The OAuth 2 connect flow: authorization code + PKCE S256, completed by a callback.

``start`` stores a single-use ``state`` (only its hash) and the PKCE verifier (in the vault) and returns the
authorization URL. ``complete`` takes the full callback URL and checks, in order: a known state, not used
before (it is burnt by the first attempt, good or bad), not older than its TTL (≤ 10 minutes), the callback
URL matching the registered redirect URI exactly, the RFC 9207 ``iss`` when present (required when the
server advertises it), then exchanges the code (with RFC 8707 ``resource`` when configured). Tokens only
travel in request and response bodies, never in a URL. A binding that discovers its server (an MCP
upstream, see ``_mcp_connect``) runs that discovery, and client registration if needed, in ``start``; the
client it chose is sealed with the state, ``complete`` exchanges the code as that client, and only then is
it stored as the connector's authorization (an abandoned connect changes nothing).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import sqlalchemy as sa

from toolbridge.audit import args_digest
from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._manager import CredentialManager
from toolbridge.credentials._mcp_connect import DiscoveredClient, prepare_discovered, store_discovered
from toolbridge.credentials._providers import ServerMetadata
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._store import Connection, Material
from toolbridge.credentials._tables import oauth_states
from toolbridge.errors import AuthorizationRejected, BadRequest, ConfigurationError, ToolbridgeError

__all__ = ["Authorization", "ConnectFlow"]

# Parameters an authorization server adds to the redirect URI; anything else is an "extra query".
_RESPONSE_PARAMS = frozenset(
    {
        "code",
        "state",
        "iss",
        "error",
        "error_description",
        "error_uri",
        "session_state",
        "scope",
        "authuser",
        "hd",
        "prompt",
    }
)


@dataclass(frozen=True, slots=True)
class Authorization:
    url: str
    redirect_uri: str
    expires_at: float
    state_hash: str


def _client_name(digest: str) -> str:
    """The vault name of the discovered client a pending authorization request was made as."""
    return f"oauth-state-client:{digest}"


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def pkce_pair() -> tuple[Secret, str]:
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return Secret(verifier), challenge


class ConnectFlow:
    def __init__(self, manager: CredentialManager) -> None:
        self.manager = manager

    async def start(
        self,
        connector: str,
        account: str = "default",
        *,
        redirect_uri: str | None = None,
        owner: str = "",
        actor: str = "local:local",
        audited: bool = False,
    ) -> Authorization:
        """Begin connecting ``account`` for ``owner`` (a principal id; ``""``: a shared connection); the
        callback stores the connection as ``owner``'s. The audit row names ``actor``; ``audited``: the
        caller records the action itself (a surface's request through ``Hub.perform``), so no second row."""
        binding = self._oauth_binding(connector)
        redirect = redirect_uri or binding.redirect_uri
        if not redirect:
            raise BadRequest(
                f"connector {connector!r} has no redirect_uri: the request names none and "
                f"connectors.{connector}.connections.redirect_uri is not set",
                hint="pass redirect_uri (the callback URL registered with the provider, e.g. "
                "https://HUB/v1/connections/callback) or set connections.redirect_uri in toolbridge.yaml",
            )
        discovered: DiscoveredClient | None = None
        if binding.discover is not None:  # an MCP upstream: find its server (and register) first
            discovered, binding = await prepare_discovered(self.manager, connector, redirect)
        metadata = await self.manager.grants.metadata(binding)
        _require_s256(metadata, connector)
        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        now = self.manager.clock()
        digest = _hash(state)
        async with self.manager.database_transaction() as conn:
            await conn.execute(
                oauth_states.insert().values(
                    state_hash=digest,
                    connector=connector,
                    account=account,
                    owner=owner,
                    redirect_uri=redirect,
                    issuer=metadata.issuer,
                    created_at=now,
                    expires_at=now + binding.state_ttl,
                    used_at=None,
                )
            )
            await self.manager.vault.write(conn, f"oauth-state:{digest}", verifier)
            if discovered is not None:
                await self.manager.vault.write(conn, _client_name(digest), discovered.to_secret())
        params = self._authorize_params(binding, redirect, state, challenge)
        started = args_digest({"connector": connector, "owner": owner, "account": account})
        if not audited:
            await self.manager.record("(credentials.connect_start)", actor, "", started, "ok", None)
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return Authorization(
            metadata.authorization_endpoint + separator + urlencode(params),
            redirect,
            now + binding.state_ttl,
            digest,
        )

    def _authorize_params(
        self, binding: AuthConfig, redirect: str, state: str, challenge: str
    ) -> dict[str, str]:
        assert binding.provider is not None
        params = {
            "response_type": "code",
            "client_id": binding.client_id or "",
            "redirect_uri": redirect,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        scope = binding.scope_string()
        if scope:
            params["scope"] = scope
        params.update(binding.provider.authorize_params)
        if binding.resource:
            params["resource"] = binding.resource
        return params

    async def complete(self, callback_url: str) -> Connection:
        """Check the callback and exchange its code; the new (or reconnected) connection."""
        try:
            return await self._complete(callback_url)
        except ToolbridgeError as exc:
            await self.manager.record("(credentials.connect)", "anonymous", "", "", "error", exc.code)
            raise

    async def _complete(self, callback_url: str) -> Connection:
        params = dict(parse_qsl(urlsplit(callback_url).query, keep_blank_values=True))
        row, verifier, discovered = await self._claim_state(params.get("state"))
        self._check_redirect(callback_url, row.redirect_uri)
        if "error" in params:
            raise AuthorizationRejected(
                f"the authorization server refused: {params['error'][:64]}"
                + (
                    f" ({params.get('error_description', '')[:200]})"
                    if params.get("error_description")
                    else ""
                ),
                hint="start the connect flow again; the person may have declined",
            )
        self._oauth_binding(row.connector)
        if discovered is not None:  # exchange as the client the authorization request was made as
            binding = discovered.bind(self.manager.declared(row.connector))
        else:
            binding = await self.manager.current_binding(row.connector)
        metadata = await self.manager.grants.metadata(binding)
        _check_issuer(params.get("iss"), metadata, row.issuer)
        code = params.get("code")
        if not code:
            raise AuthorizationRejected(
                "the callback carries no authorization code", hint="start the flow again"
            )
        endpoint = await self.manager.grants.endpoint(binding)
        tokens = await endpoint.exchange_code(code, verifier=verifier.reveal(), redirect_uri=row.redirect_uri)
        if discovered is not None:
            await store_discovered(self.manager, row.connector, discovered)
        connection = await self.manager.add(
            row.connector,
            row.account,
            Material(tokens=tokens),
            owner=row.owner,
            actor=row.owner or "local:local",
        )
        await self.manager.record(
            "(credentials.connect)",
            row.owner or f"connection:{row.connector}/{row.account}",
            "",
            args_digest({"connection": connection.id}),
            "ok",
            None,
        )
        return connection

    async def _claim_state(
        self, state: str | None
    ) -> tuple[sa.Row[tuple[object, ...]], Secret, DiscoveredClient | None]:
        if not state:
            raise AuthorizationRejected(
                "the callback has no state parameter", hint="start the connect flow again"
            )
        digest = _hash(state)
        now = self.manager.clock()
        t = oauth_states.c
        async with self.manager.database_transaction() as conn:
            row = (await conn.execute(sa.select(oauth_states).where(t.state_hash == digest))).first()
            if row is None:
                raise AuthorizationRejected(
                    "the callback's state is unknown", hint="start the connect flow again"
                )
            burnt = await conn.execute(
                oauth_states.update().where(t.state_hash == digest, t.used_at.is_(None)).values(used_at=now)
            )
            verifier = await self.manager.vault.read(conn, f"oauth-state:{digest}")
            client = await self.manager.vault.read(conn, _client_name(digest))
            await self.manager.vault.remove(conn, f"oauth-state:{digest}")
            await self.manager.vault.remove(conn, _client_name(digest))
        if burnt.rowcount != 1 or verifier is None:
            raise AuthorizationRejected(
                "the callback's state was already used", hint="start the connect flow again"
            )
        if now > row.expires_at:
            raise AuthorizationRejected(
                "the callback's state has expired (older than the flow's time limit)",
                hint="start the connect flow again and finish within 10 minutes",
            )
        return row, verifier, DiscoveredClient.from_secret(client) if client is not None else None

    @staticmethod
    def _check_redirect(callback_url: str, registered: str) -> None:
        got, want = urlsplit(callback_url), urlsplit(registered)
        extra = [(k, v) for k, v in parse_qsl(got.query, keep_blank_values=True) if k not in _RESPONSE_PARAMS]
        same = (got.scheme, got.netloc, got.path) == (want.scheme, want.netloc, want.path)
        if not same or sorted(extra) != sorted(parse_qsl(want.query, keep_blank_values=True)):
            raise AuthorizationRejected(
                "the callback URL does not match the registered redirect URI exactly",
                hint=f"the redirect URI is {registered}",
            )

    def check_connectable(self, connector: str) -> None:
        """Raise unless ``connector`` uses the OAuth 2 authorization-code scheme."""
        self._oauth_binding(connector)

    def _oauth_binding(self, connector: str) -> AuthConfig:
        binding = self.manager.binding(connector)
        if binding.scheme != "oauth2":
            raise ConfigurationError(
                f"connector {connector!r} uses {binding.scheme}, which has no connect flow",
                hint=f"add its secret with: toolbridge connections add {connector} --secret env:VARIABLE",
            )
        return binding

    async def purge(self) -> int:
        """Delete states past their expiry (and their verifiers)."""
        now = self.manager.clock()
        t = oauth_states.c
        async with self.manager.database_transaction() as conn:
            rows = (await conn.execute(sa.select(t.state_hash).where(t.expires_at < now))).all()
            for r in rows:
                await self.manager.vault.remove(conn, f"oauth-state:{r.state_hash}")
                await self.manager.vault.remove(conn, _client_name(r.state_hash))
            await conn.execute(oauth_states.delete().where(t.expires_at < now))
        return len(rows)


def _require_s256(metadata: ServerMetadata, connector: str) -> None:
    methods = metadata.code_challenge_methods
    if methods is not None and "S256" not in methods:
        raise ConfigurationError(
            f"the authorization server of {connector!r} does not advertise PKCE S256 "
            "(code_challenge_methods_supported)",
            hint="toolbridge refuses OAuth flows without S256 PKCE; ask the provider to support it",
        )


def _check_issuer(iss: str | None, metadata: ServerMetadata, stored: str | None) -> None:
    expected = stored or metadata.issuer
    if iss is not None and iss != expected:
        raise AuthorizationRejected(
            "the callback's iss names another authorization server (RFC 9207 mix-up defence)",
            hint="start the flow again; if it repeats, check the provider configuration",
        )
    if iss is None and metadata.iss_parameter_supported:
        raise AuthorizationRejected(
            "the callback lacks the iss parameter its server promises (RFC 9207)",
            hint="start the connect flow again",
        )
