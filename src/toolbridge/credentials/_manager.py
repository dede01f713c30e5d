"""The credential manager: connection → vault → scheme for every call, and single-flight refresh.

Hot path (a cached, valid token): a dict lookup, two clock comparisons and an audit entry queued.
Refresh — proactive (within ``refresh_skew`` of expiry) or after a 401 — runs once per connection:

* across tasks, one flight per connection (``_flights``): the refresh runs in a task of its own, to its
  own bound (``token_timeout``); every caller joins it and waits no longer than its call's deadline;
* across processes, a lease in the ``connections`` row, then a compare-and-set commit on ``token_version``
  (see ``_store``); a process that lost the lease polls (bounded) until the new version appears;
* the token request and the commit are shielded from cancellation: once the provider has rotated the
  refresh token, the new one is always persisted before anyone uses it;
* ``invalid_grant`` → ``reauth_required`` and a reconnect error; a 5xx or network failure leaves the
  connection as it was and raises :class:`~toolbridge.errors.TokenRefreshFailed`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import anyio
import httpx2
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge._httpclient import closing_transport
from toolbridge._redact import UrlQueryFilter, forms
from toolbridge._urlguard import Resolver, URLGuard, system_resolver
from toolbridge.audit import AuditLog, args_digest, audit_entry
from toolbridge.credentials._auth import build_auth, fields_of
from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._flights import Flights, unanswered
from toolbridge.credentials._grants import Grants
from toolbridge.credentials._mcp_auth import OAUTH_GUARD
from toolbridge.credentials._mcp_connect import load_discovered
from toolbridge.credentials._ownership import connect_required, owners
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._store import Connection, ConnectionStore, Material
from toolbridge.credentials._tokens import GrantDead, refresh_failure
from toolbridge.credentials._vault import Vault
from toolbridge.errors import (
    BadRequest,
    ConfigurationError,
    CredentialsError,
    NotConnected,
    NotFound,
    StorageError,
    TokenRefreshFailed,
    ToolbridgeError,
)
from toolbridge.policy import Principal
from toolbridge.resilience._retry import Backoff, retry

__all__ = ["CredentialManager", "ResolvedCredentials"]

logger = logging.getLogger("toolbridge.credentials")
_COMMITS = Backoff(attempts=3, base=0.1, max_delay=1.0)
"""Storing a refreshed token set: the provider may have retired the old refresh token already."""


@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    """What a connector gets for one call (satisfies ``toolbridge.connectors.Credentials``)."""

    connection_id: str
    connector: str
    account: str
    scheme: str
    version: int
    auth: httpx2.Auth
    refresh: Callable[[], Awaitable[None]] | None
    used: tuple[str, ...] = field(default=(), repr=False)
    cell: _Cell | None = field(default=None, repr=False)
    ejection_key: str | None = None
    """The connection outlier ejection watches: one of a per-user connector's; None for a connector's one
    shared credential, which its breaker guards (docs/resilience.md "Outlier ejection")."""

    def describe(self) -> str:
        return f"{self.connector} as {self.account} ({self.scheme})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every form of the secret values in play — at resolve time and after a refresh — for redaction."""
        current = self.cell.secrets if self.cell is not None else ()
        return self.used if current is self.used else self.used + current


class _Cell:
    """The current token set of one connection in this process; auth flows read it at send time."""

    __slots__ = ("auth", "connection", "digest", "loaded_at", "material", "secrets")

    def __init__(
        self, connection: Connection, material: Material, loaded_at: float, auth: httpx2.Auth
    ) -> None:
        self.connection = connection
        self.material = material
        self.loaded_at = loaded_at
        self.auth = auth
        self.digest = args_digest({"connection": connection.id})
        self.secrets: tuple[str, ...] = ()

    def token(self) -> Secret:
        tokens = self.material.tokens
        if tokens is None:
            raise CredentialsError("the connection has no token yet", hint="reconnect the account")
        return tokens.access_token


class _Placeholder(httpx2.Auth):
    """The auth of a cell not built yet (replaced before the cell is used)."""


def secret_forms(binding: AuthConfig, material: Material) -> tuple[str, ...]:
    """Every secret value of a connection, in the forms an upstream could echo (for redaction)."""
    values: list[str] = []
    if material.tokens is not None:
        values.append(material.tokens.access_token.reveal())
        if material.tokens.refresh_token is not None:
            values.append(material.tokens.refresh_token.reveal())
    if material.secret is not None:
        raw = material.secret.reveal()
        values.append(raw)
        values += [v.reveal() for v in fields_of(material.secret).values()]
        if binding.scheme == "basic" and binding.username is None:  # the secret is user:password
            values.append(raw.partition(":")[2])  # an upstream may quote the password alone; the user name
            # is no secret (as the ``username`` field's is not), and masking it would mask an account name
            # like "github" in every answer
    if binding.client_secret is not None:
        values.append(binding.client_secret.reveal())
    basic_user = binding.username if binding.scheme == "basic" else None
    found = forms(values, basic_user=basic_user)
    if binding.scheme == "basic" and basic_user is None and material.secret is not None:
        found += forms([base64.b64encode(material.secret.reveal().encode()).decode()])
    return found


_MARGIN = 1.0
"""Seconds of life an access token must have left to be used when its proactive refresh failed."""
_REPORT = 0.5
"""Seconds before the call's deadline a refresh after a 401 stops waiting: its error names the endpoint."""


class CredentialManager:
    def __init__(
        self,
        vault: Vault,
        bindings: Mapping[str, AuthConfig],
        *,
        client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
        cache_ttl: float = 5.0,
        lease_ttl: float = 30.0,
        wait_timeout: float = 30.0,
        token_timeout: float = 20.0,
        url_guard: URLGuard = OAUTH_GUARD,
        resolver: Resolver = system_resolver,
        audit: AuditLog | None = None,
        on_reauth: Callable[[Connection, str], None] | None = None,
    ) -> None:
        self.vault = vault
        self.url_guard = url_guard
        """Checks the URLs remote parties hand toolbridge during OAuth discovery and registration."""
        self.resolver = resolver
        self.store = ConnectionStore(vault)
        self.bindings = dict(bindings)
        self.clock = clock or vault.database.time
        """Seconds since the epoch in the database server's time (:meth:`Database.now`): refresh leases
        and token expiries are compared across processes."""
        self.cache_ttl = cache_ttl
        self.lease_ttl = lease_ttl
        self.wait_timeout = wait_timeout
        self.token_timeout = token_timeout
        if lease_ttl <= token_timeout:
            raise ConfigurationError(
                "the refresh lease must outlast the token request (lease_ttl > token_timeout)",
                hint="otherwise two processes could send the same rotating refresh token",
            )
        self.owner = f"{secrets.token_hex(6)}"
        self.audit = audit
        """Where adding, removing and resolving connections is recorded (a hub given these credentials
        records to the same log)."""
        self.on_reauth = on_reauth
        """Called when a connection needs a person to reconnect it (the event log records it)."""
        self._own_client = client is None
        self._client = client or httpx2.AsyncClient(
            transport=closing_transport(), timeout=token_timeout, trust_env=False
        )
        self.grants = Grants(self._client, clock=self.clock, guard=url_guard, resolver=resolver)
        self._declared: dict[str, AuthConfig] = {}
        self._cells: dict[str, _Cell] = {}
        self._selected: dict[tuple[str, tuple[str, ...], str | None], str] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._flights = Flights(lambda: self.clock())  # read when asked: a test may set another clock
        """The refresh under way per connection, and those that just failed (not tried again before)."""
        self._log_filter: UrlQueryFilter | None = None
        self.refreshes = 0
        """Token requests this process sent (for tests and metrics)."""

    async def __aenter__(self) -> CredentialManager:
        names = {b.name for b in self.bindings.values() if b.scheme == "api_key" and b.location == "query"}
        if names:  # httpx2 logs request URLs; API keys in a query string are masked there
            self._log_filter = UrlQueryFilter(names)
            logging.getLogger("httpx2").addFilter(self._log_filter)
        await self._flights.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._flights.__aexit__(None, None, None)
        if self._log_filter is not None:
            logging.getLogger("httpx2").removeFilter(self._log_filter)
            self._log_filter = None
        if self._own_client:
            await self._client.aclose()

    @property
    def client(self) -> httpx2.AsyncClient:
        return self._client

    def database_transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self.vault.database.transaction()

    def binding(self, connector: str) -> AuthConfig:
        try:
            return self.bindings[connector]
        except KeyError:
            raise NotFound(
                f"connector {connector!r} takes no credentials",
                hint="connectors with credentials: " + (", ".join(sorted(self.bindings)) or "none"),
            ) from None

    def add_binding(self, connector: str, binding: AuthConfig) -> None:
        """Give a connector without credentials its binding (an OpenAPI connector's ``auth:`` block, read
        as a connection when the connector is built)."""
        if connector in self.bindings:
            raise ConfigurationError(f"connector {connector!r} already has credentials configured")
        self.bindings[connector] = binding

    def declared(self, connector: str) -> AuthConfig:
        """The binding as configured, before MCP discovery completed it."""
        return self._declared.setdefault(connector, self.binding(connector))

    def install_binding(self, connector: str, binding: AuthConfig) -> AuthConfig:
        """Use ``binding`` (a discovered completion of the configured one) from now on."""
        self.declared(connector)
        self.bindings[connector] = binding
        self.invalidate(connector)
        return binding

    async def current_binding(self, connector: str, *, reload: bool = False) -> AuthConfig:
        """The binding, completed from the vault when its authorization server is discovered (MCP).

        ``reload`` reads the stored discovery again (before a refresh: another process may have
        connected with a newly registered client)."""
        binding = self.binding(connector)
        if binding.discover is None or not (reload or binding.undiscovered):
            return binding
        found = await load_discovered(self.vault, connector)
        if found is None:
            raise NotConnected(
                f"connector {connector!r} is not connected (its authorization server is not discovered yet)",
                hint=f"a person must connect it: toolbridge connect {connector}",
            )
        if binding.undiscovered or found.bind(self.declared(connector)) != binding:
            return self.install_binding(connector, found.bind(self.declared(connector)))
        return binding

    # -- the call path ------------------------------------------------------------------------------

    async def resolve(
        self,
        connector: str,
        principal: Principal,
        connection: str | None,
        *,
        request_id: str = "",
        tool: str = "",
        until: float | None = None,
    ) -> ResolvedCredentials:
        """``until``: the call's deadline (``anyio.current_time()``); no refresh holds it longer."""
        binding = await self.current_binding(connector)
        configured = binding.configured and connection in (None, "default")
        if configured:
            cell = self._configured(connector, binding, tool)
        elif binding.minted_per_caller:
            cell = await self._exchanged(binding, connector, principal, connection, tool)
        else:
            cell = await self._cell(connector, connection, tool, owners(binding, principal))
        conn = cell.connection
        if conn.state in ("reauth_required", "revoked"):
            await self.record(
                "(credentials.use)", principal.id, request_id, cell.digest, "error", "reconnect_required"
            )
            raise _reconnect(conn, tool)
        if binding.uses_tokens and self._stale(cell, binding):
            cell = await self._refreshed_or_current(cell, tool, until)
        await self.record("(credentials.use)", principal.id, request_id, cell.digest, "ok", None)
        version = cell.connection.token_version
        refresh = self._refresher(conn.id, version, tool, until) if binding.uses_tokens else None
        key = conn.id if binding.per_user and not configured else None  # the one outlier ejection watches
        held = (conn.id, connector, conn.account, binding.scheme, version, cell.auth, refresh, cell.secrets)
        return ResolvedCredentials(*held, cell, key)

    async def _refreshed_or_current(self, cell: _Cell, tool: str, until: float | None) -> _Cell:
        """A proactive refresh. When the token endpoint fails for a moment and the current access token has
        not expired yet, the call goes on with it, as MSAL does (its failure had every call fail until the
        endpoint came back, though their token was good for up to ``refresh_skew`` more seconds); the next
        call tries again once the pause has passed. An expired token, or a dead grant, still fails. A call
        with a good token waits for its refresh half its time at most, then goes on with that token."""
        conn, usable = cell.connection, self._usable(cell)
        if usable and until is not None:
            until = anyio.current_time() + max(0.0, until - anyio.current_time()) / 2
        try:  # while the token is good, a call does not wait for a refresh another task or process runs
            await self.refresh(conn.id, conn.token_version, reason="proactive", tool=tool, wait=not usable,
                               until=until)  # fmt: skip
        except TokenRefreshFailed as exc:
            cell = self._cells.get(conn.id, cell)  # the newest token this process has seen
            if not self._usable(cell):
                raise
            logger.info("using the current token of %s until it expires: %s", conn.id, exc.message)
            return cell
        return self._cells.get(conn.id, cell)

    def _usable(self, cell: _Cell) -> bool:
        tokens = cell.material.tokens
        return (
            tokens is not None
            and tokens.expires_at is not None
            and self.clock() < tokens.expires_at - _MARGIN
        )

    def _configured(self, connector: str, binding: AuthConfig, tool: str) -> _Cell:
        """The shared connection whose secret is configured in ``toolbridge.yaml`` (``secret: env:…``):
        read at load, never stored in the vault, never refreshed."""
        ident = f"configured:{connector}"
        cell = self._cells.get(ident)
        if cell is not None:
            return cell
        if binding.secret is None:
            raise CredentialsError(
                f"connector {connector!r} has no credentials: its secret {binding.secret_source} is not set",
                hint=f"set {binding.secret_source} and restart toolbridge",
                tool=tool or None,
            )
        now = dt.datetime.now(dt.UTC)
        conn = Connection(ident, connector, "default", binding.scheme, "active", 0, None, None, now, now)
        return self._install(conn, Material(secret=binding.secret))

    async def secret_values(
        self, connector: str, principal: Principal, connection: str | None = None, *, tool: str = ""
    ) -> dict[str, Secret]:
        """A connection's secret values by name, for a subprocess environment (stdio MCP servers).

        ``secret`` is the whole static secret, or the current access token of a token connection;
        a JSON object secret also gives each of its fields; ``access_token`` is there when the
        connection holds tokens. Resolved (and audited, refreshed when expiring) like a call.
        """
        resolved = await self.resolve(connector, principal, connection, tool=tool)
        assert resolved.cell is not None
        material = resolved.cell.material
        values: dict[str, Secret] = {}
        if material.secret is not None:
            values.update(fields_of(material.secret))
            values["secret"] = material.secret
        if material.tokens is not None:
            values["access_token"] = material.tokens.access_token
            values.setdefault("secret", material.tokens.access_token)
        return values

    async def _exchanged(
        self, binding: AuthConfig, connector: str, principal: Principal, connection: str | None, tool: str
    ) -> _Cell:
        """The caller's own token — exchanged (RFC 8693) or asserted for it (RFC 7523) — obtained on first
        use and cached in its own connection, so every process shares it, until it expires (then the
        refresh path obtains a new one the same way)."""
        whose = (principal.id,)
        try:
            cell = await self._cell(connector, connection, tool, whose)
            if cell.connection.state not in ("reauth_required", "revoked"):
                return cell
        except NotConnected:
            pass
        async with self._locks.setdefault(f"exchange:{connector}:{principal.id}", anyio.Lock()):
            with contextlib.suppress(NotConnected):
                cell = await self._cell(connector, connection, tool, whose)
                if cell.connection.state not in ("reauth_required", "revoked"):
                    return cell  # another task exchanged meanwhile
            subject = None
            if binding.scheme == "token_exchange":
                subject = await self.subject_token(binding, principal.id, tool)
            with anyio.fail_after(self.token_timeout):
                tokens = await self.grants.fetch(binding, Material(), subject=subject, owner=principal.id)
            self.refreshes += 1
            await self.add(connector, connection or "default", Material(tokens=tokens), owner=principal.id,
                           actor=principal.id)  # fmt: skip
            return await self._cell(connector, connection, tool, whose)

    async def subject_token(self, binding: AuthConfig, owner: str, tool: str = "") -> Secret:
        """The identity token of ``owner`` that a token_exchange binding exchanges: the access token (or
        secret) of its own connection to ``subject_connector``, refreshed first when it is expiring."""
        assert binding.subject_connector is not None
        kind, _, name = owner.partition(":")
        who = Principal.local(name) if kind == "local" else Principal.agent(name, ())
        resolved = await self.resolve(binding.subject_connector, who, None, tool=tool)
        assert resolved.cell is not None
        material = resolved.cell.material
        token = material.tokens.access_token if material.tokens is not None else material.secret
        if token is None:
            raise NotConnected(
                f"{owner}'s connection to {binding.subject_connector!r} holds no token to exchange",
                hint=f"reconnect it: toolbridge connect {binding.subject_connector} --for {owner}",
            )
        return token

    def _refresher(
        self, ident: str, version: int, tool: str, until: float | None
    ) -> Callable[[], Awaitable[None]]:
        async def refresh() -> None:  # given up a moment before the call's deadline, whose timeout hides why
            ends = None if until is None else until - _REPORT
            await self.refresh(ident, version, reason="401", tool=tool, until=ends)

        return refresh

    def _stale(self, cell: _Cell, binding: AuthConfig) -> bool:
        tokens = cell.material.tokens
        if tokens is None:
            return True
        due = tokens.refresh_at(binding.refresh_skew)
        return due is not None and self.clock() >= due

    async def _cell(self, connector: str, connection: str | None, tool: str, whose: tuple[str, ...]) -> _Cell:
        key = (connector, whose, connection)
        ident = self._selected.get(key)
        cell = self._cells.get(ident) if ident is not None else None
        if cell is not None and self.clock() - cell.loaded_at < self.cache_ttl:
            return cell
        chosen = await self._choose_owned(connector, connection, tool, whose)
        self._selected[key] = chosen.id
        return await self._load(chosen.id)

    async def _choose_owned(
        self, connector: str, connection: str | None, tool: str, whose: tuple[str, ...]
    ) -> Connection:
        """The connection of the first owner in ``whose`` that has one (``""``: the shared ones)."""
        for owner in whose:
            try:
                return await self._choose(connector, connection, tool, owner)
            except NotConnected:
                if owner != whose[-1]:
                    continue
                if owner:
                    oauth = self.bindings[connector].scheme == "oauth2"
                    raise connect_required(connector, owner, connection, tool, oauth=oauth) from None
                raise
        raise AssertionError("unreachable: every policy names an owner")

    async def _choose(self, connector: str, connection: str | None, tool: str, owner: str) -> Connection:
        found = await self.store.find(connector, connection, owner=owner) if connection is not None else []
        if connection is not None and not found:
            found = [c for c in await self.store.find(connector, owner=owner) if c.id == connection]
        elif connection is None:
            found = await self.store.find(connector, owner=owner)
            if len(found) > 1:
                default = [c for c in found if c.account == "default"]
                if not default:
                    raise BadRequest(
                        f"connector {connector!r} has {len(found)} connections; say which one to use",
                        hint="pass connection= one of: " + ", ".join(repr(c.account) for c in found),
                        tool=tool or None,
                    )
                found = default
        if not found:
            who = f" as {connection!r}" if connection is not None else ""
            account = f" --account {connection}" if connection else ""
            scheme = self.bindings[connector].scheme if connector in self.bindings else "oauth2"
            if scheme == "oauth2":
                how = f"a person must connect it: toolbridge connect {connector}{account}"
            elif scheme == "client_credentials":  # the configured client's secret serves it
                how = (
                    f"an operator adds it: toolbridge connections add {connector}{account} (the configured "
                    "client's secret is used; --secret env:VARIABLE gives it one of its own)"
                )
            else:  # a static secret: no sign-in, its secret is added
                how = (
                    f"an operator adds its secret: toolbridge connections add {connector}{account} "
                    "--secret env:VARIABLE (or POST /v1/connections)"
                )
            raise NotConnected(f"connector {connector!r} is not connected{who}", hint=how, tool=tool or None)
        return found[0]

    async def _load(self, ident: str) -> _Cell:
        conn, material = await self.store.load(ident)
        existing = self._cells.get(ident)
        if existing is not None and existing.connection.token_version == conn.token_version:
            existing.connection, existing.loaded_at = conn, self.clock()
            return existing
        return self._install(conn, material)

    def _install(self, conn: Connection, material: Material) -> _Cell:
        binding = self.bindings[conn.connector]
        cell = self._cells.get(conn.id)
        if cell is None:
            cell = self._cells[conn.id] = _Cell(conn, material, self.clock(), _Placeholder())
        else:  # token auth flows already handed out keep reading the same cell
            cell.connection, cell.material, cell.loaded_at = conn, material, self.clock()
        if not binding.uses_tokens or isinstance(cell.auth, _Placeholder):
            cell.auth = build_auth(binding, material, cell)
        cell.secrets = secret_forms(binding, material)
        return cell

    def invalidate(self, connector: str | None = None) -> None:
        """Forget cached connections (after a connect, a removal, or a change in another process)."""
        for key in [k for k in self._selected if connector is None or k[0] == connector]:
            self._selected.pop(key, None)
        for ident in [
            i for i, c in self._cells.items() if connector is None or c.connection.connector == connector
        ]:
            self._cells[ident].loaded_at = float("-inf")

    # -- refresh ------------------------------------------------------------------------------------

    async def refresh(
        self,
        ident: str,
        seen_version: int,
        *,
        reason: str,
        tool: str = "",
        wait: bool = True,
        until: float | None = None,
    ) -> None:
        """Make sure a token newer than ``seen_version`` (and not expiring) is stored and cached.

        ``wait=False`` (a proactive refresh while the current token is still good): when another task or
        process is refreshing it already, return at once — a slow token endpoint held every call of the
        connection for up to ``token_timeout`` (20 s), in every replica, though their token was good.
        ``until`` (``anyio.current_time()``): the caller's deadline. Past it, the caller gets a
        :class:`TokenRefreshFailed` naming the token endpoint, and the refresh goes on without it."""
        if not wait and self._flights.running(ident):
            return
        for _ in range(2 if wait else 1):  # a flight joined under way may have been for an older token
            cell = self._cells.get(ident)
            if cell is not None and self._fresh(cell.connection, cell.material, seen_version):
                return
            self._flights.raise_recent(ident, tool)
            work = functools.partial(self._fly, ident, seen_version, reason, tool, wait)
            if not await self._flights.join(ident, work, until=until, tool=tool):
                raise self._unanswered(ident, tool)

    async def _fly(self, ident: str, seen_version: int, reason: str, tool: str, wait: bool) -> None:
        """One refresh of ``ident``, in its flight's task, bounded by the lease wait and the token timeout."""
        try:
            with anyio.fail_after(self.wait_timeout + self.token_timeout):
                await self._refresh_across_processes(ident, seen_version, reason, tool, wait)
        except TimeoutError:
            failed = TokenRefreshFailed(f"refreshing the token of connection {ident} took too long",
                                        hint="try again shortly", tool=tool or None)  # fmt: skip
            self._flights.remember(ident, failed)
            raise failed from None
        except (TokenRefreshFailed, ConfigurationError) as exc:
            self._flights.remember(ident, exc)
            raise
        self._flights.forget(ident)

    def _unanswered(self, ident: str, tool: str) -> TokenRefreshFailed:
        cell = self._cells.get(ident)
        host = self.grants.token_host(self.bindings[cell.connection.connector]) if cell else "of the provider"
        return unanswered(host, ident, self.token_timeout, tool)

    def _fresh(self, conn: Connection, material: Material, seen_version: int) -> bool:
        if conn.token_version <= seen_version or material.tokens is None:
            return False
        due = material.tokens.refresh_at(self.bindings[conn.connector].refresh_skew)
        return due is None or self.clock() < due

    async def _refresh_across_processes(
        self, ident: str, seen_version: int, reason: str, tool: str, wait: bool = True
    ) -> None:
        pause = 0.02
        give_up = anyio.current_time() + self.wait_timeout
        while True:
            conn, material = await self.store.load(ident)
            if conn.state in ("reauth_required", "revoked"):
                self._install(conn, material)
                raise _reconnect(conn, tool)
            if self._fresh(conn, material, seen_version):
                self._install(conn, material)  # another process refreshed: use its token
                return
            if (
                conn.token_version > seen_version
            ):  # newer, though due too: what a failed refresh falls back on
                self._install(conn, material)
            if await self.store.acquire_lease(
                ident, conn.token_version, self.owner, now=self.clock(), ttl=self.lease_ttl
            ):
                await self._refresh_holding_lease(conn, material, reason, tool)
                return
            if not wait:
                return  # another process refreshes it; the caller's token is still good
            if anyio.current_time() + pause > give_up:
                raise TokenRefreshFailed(
                    f"another process has been refreshing {conn.connector} as {conn.account} for too long",
                    hint="try again shortly",
                    tool=tool or None,
                )
            await anyio.sleep(pause)  # bounded poll: the lease holder commits or its lease runs out
            pause = min(pause * 2, 0.25)  # (a wait for another process, not a retry: no testing switch)

    async def _refresh_holding_lease(
        self, conn: Connection, material: Material, reason: str, tool: str
    ) -> None:
        binding = await self.current_binding(conn.connector, reload=True)
        started = anyio.current_time()
        who = f"connection:{conn.connector}/{conn.account}"
        digest = args_digest({"connection": conn.id, "reason": reason})
        with anyio.CancelScope(shield=True):
            try:
                self.refreshes += 1
                subject = None
                if binding.scheme == "token_exchange":  # a new exchange of the owner's identity token
                    subject = await self.subject_token(binding, conn.owner, tool)
                with anyio.fail_after(self.token_timeout):
                    tokens = await self.grants.fetch(binding, material, subject=subject, owner=conn.owner)
            except GrantDead as exc:
                marked = await self.store.set_state(
                    conn.id, "reauth_required", error=exc.message, expected_version=conn.token_version
                )
                await self.record("(credentials.refresh)", who, "", digest, "error", exc.code, started)
                fresh, mat = await self.store.load(conn.id)
                self._install(fresh, mat)
                if not marked and fresh.state == "active":
                    return  # a newer token was stored meanwhile (our lease had run out): use that one
                logger.warning(
                    "connection %s as %s%s needs a person to reconnect: %s",
                    conn.connector,
                    conn.account,
                    f" of {conn.owner}" if conn.owner else "",
                    exc.message,
                )
                if self.on_reauth is not None:
                    self.on_reauth(fresh, exc.message)
                raise _reconnect(fresh, tool, cause=exc.message) from None
            except (ToolbridgeError, TimeoutError) as exc:
                failure = refresh_failure(exc, self.token_timeout, self.grants.token_host(binding))
                await self.store.release_lease(conn.id, self.owner, error=failure.message)
                await self.record("(credentials.refresh)", who, "", digest, "error", failure.code, started)
                failure.tool = tool or None
                raise failure from None
            committed = await self._commit(conn, Material(material.secret, tokens), tokens.expires_at)
            outcome = "ok" if committed is not None else "stale"
            await self.record("(credentials.refresh)", who, "", digest, outcome, None, started)
            fresh, mat = await self.store.load(conn.id)  # ours, or the newer one that beat us
            self._install(fresh, mat)

    async def _commit(self, conn: Connection, material: Material, expires_at: float | None) -> int | None:
        """Persist a fresh token set: the provider may already have retired the old refresh token, so a
        database hiccup is retried (bounded) rather than losing the only copy of the new one."""
        return await retry(
            lambda: self.store.commit(conn.id, conn.token_version, material, expires_at=expires_at),
            on=(StorageError,),
            backoff=_COMMITS,
            what=f"storing the refreshed token of {conn.id}",
            logger=logger,
        )

    # -- management ---------------------------------------------------------------------------------

    async def add(
        self,
        connector: str,
        account: str,
        material: Material,
        *,
        owner: str = "",
        actor: str = "local:local",
        request_id: str = "",
    ) -> Connection:
        """Add (or replace) ``owner``'s connection (``""``: a shared one); the audit row names ``actor``,
        the principal who acted. Who may act for whom is the surface's decision (see ``may_manage``)."""
        binding = self.binding(connector)
        expires = material.tokens.expires_at if material.tokens else None
        conn = await self.store.save(
            connector, account, binding.scheme, material, expires_at=expires, owner=owner
        )
        self.invalidate(connector)
        await self.record("(credentials.add)", actor, request_id, _digest(conn), "ok", None)
        return conn

    async def remove(self, ident: str, *, actor: str = "local:local", request_id: str = "") -> bool:
        conn = await self.store.get(ident)
        removed = await self.store.remove(ident)
        self._cells.pop(ident, None)
        self.invalidate(conn.connector)
        await self.record("(credentials.remove)", actor, request_id, _digest(conn), "ok", None)
        return removed

    async def record(
        self,
        tool: str,
        principal: str,
        request_id: str,
        digest: str,
        outcome: str,
        error_code: str | None,
        started: float | None = None,
    ) -> None:
        if self.audit is None:
            return
        duration = (anyio.current_time() - started) * 1000.0 if started is not None else 0.0
        rid = request_id or secrets.token_hex(8)
        entry = audit_entry(
            rid, principal, tool, digest, duration_ms=duration, outcome=outcome, error_code=error_code
        )
        await self.audit.record(entry)


def _digest(conn: Connection) -> str:
    return args_digest({"connection": conn.id, "owner": conn.owner, "account": conn.account})


def _reconnect(conn: Connection, tool: str, *, cause: str | None = None) -> CredentialsError:
    why = f" ({cause})" if cause else f" ({conn.last_error})" if conn.last_error else ""
    whose = f" --for {conn.owner}" if conn.owner else ""
    if conn.scheme == "oauth2":
        body = json.dumps({"connector": conn.connector, "account": conn.account})
        command = f"toolbridge connect {conn.connector}{whose} --account {conn.account}"
        hint = f"a person must reconnect it: {command}"
        if conn.owner:  # its agent can start that itself
            hint += f" (or {conn.owner} itself: POST /v1/connections/connect {body})"
    else:  # a service account or a static secret: nobody signs in, its credentials are replaced
        hint = (
            f"its credentials were refused: replace them with toolbridge connections add {conn.connector}"
            f"{whose} --account {conn.account} (and check the client at the provider)"
        )
    return CredentialsError(
        f"the connection {conn.connector} as {conn.account} is {conn.state.replace('_', ' ')}{why}",
        hint=hint,
        tool=tool or None,
    )
