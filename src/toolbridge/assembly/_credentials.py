"""Settings → the credential manager: bindings per connector, provider definitions, the vault's keys."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from toolbridge.audit import AuditLog
from toolbridge.credentials import (
    AuthConfig,
    Connection,
    CredentialManager,
    KeyFile,
    KeySource,
    ProviderDef,
    ServiceAccount,
    Vault,
    load_providers,
)
from toolbridge.credentials._auth import build_auth
from toolbridge.credentials._mcp_auth import OAUTH_GUARD
from toolbridge.credentials._providers import lookup
from toolbridge.credentials._schemes import StaticToken
from toolbridge.credentials._secret import Secret, SecretRef, resolve_static
from toolbridge.credentials._store import Material
from toolbridge.errors import ConfigurationError
from toolbridge.settings import (
    ApiKeyConnection,
    BasicConnection,
    BearerConnection,
    ClientCredentialsConnection,
    ConnectionSettings,
    HeaderConnection,
    JwtBearerConnection,
    McpConnectorSettings,
    OAuth2Connection,
    OpenAPIConnectorSettings,
    Settings,
    TokenExchangeConnection,
)
from toolbridge.storage import Database

__all__ = ["binding_of", "build_credentials", "default_keys"]

logger = logging.getLogger("toolbridge.credentials")


def default_keys(settings: Settings) -> KeyFile:
    path = Path(settings.credentials.key_file).expanduser()
    return KeyFile(path if path.is_absolute() else settings.base_dir / path)


def build_credentials(
    settings: Settings,
    database: Database,
    keys: KeySource | None,
    *,
    audit: AuditLog | None = None,
    on_reauth: Callable[[Connection, str], None] | None = None,
) -> CredentialManager | None:
    """A manager for the connectors that declare ``connections:``, or None when none does; it records
    to ``audit`` (the hub's log) and reports connections that need a person to reconnect to ``on_reauth``."""
    declared = {
        name: connector.connections
        for name, connector in settings.connectors.items()
        if connector.connections is not None
    }
    legacy = any(isinstance(c, OpenAPIConnectorSettings) and c.auth for c in settings.connectors.values())
    # an OpenAPI 'auth:' block becomes a binding when its connector is built; a webhook secret given as
    # 'vault:NAME' is read through the manager's vault, so the manager exists for it too
    if not declared and not legacy and not _reads_the_vault(settings):
        return None
    providers = load_providers(settings.providers)
    bindings = {}
    for name, config in declared.items():
        try:
            where = f"connectors.{name}.connections"
            bindings[name] = binding_of(
                config, providers, settings.base_dir, _discovers(settings, name), where=where
            )
        except ConfigurationError as exc:
            raise ConfigurationError(f"connectors.{name}.connections: {exc.message}", hint=exc.hint) from exc
    vault = Vault(database, keys or default_keys(settings))
    guard = dataclasses.replace(
        OAUTH_GUARD,
        allow_hosts=frozenset(h.lower() for h in settings.credentials.oauth_allow_hosts),
        allow_loopback=settings.credentials.oauth_allow_loopback,
    )
    return CredentialManager(
        vault,
        bindings,
        cache_ttl=settings.credentials.cache_ttl,
        token_timeout=settings.credentials.refresh_timeout,
        lease_ttl=max(30.0, settings.credentials.refresh_timeout + 10.0),  # outlasts the token request
        url_guard=guard,
        audit=audit,
        on_reauth=on_reauth,
    )


def _reads_the_vault(settings: Settings) -> bool:
    """Whether a webhook source or target names its secret as ``vault:NAME``."""
    refs = [ref for hook in settings.hooks.values() for ref in (hook.secret, hook.previous_secret)]
    refs += [sub.webhook.secret for sub in settings.subscriptions.values() if sub.webhook is not None]
    return any(ref is not None and ref.startswith("vault:") for ref in refs)


def _discovers(settings: Settings, name: str) -> str | None:
    """An MCP upstream over HTTP with ``scheme: oauth2`` and no provider finds its authorization server."""
    connector = settings.connectors[name]
    config = connector.connections
    if not isinstance(connector, McpConnectorSettings) or connector.url is None:
        return None
    return connector.url if isinstance(config, OAuth2Connection) and config.provider is None else None


def binding_of(
    config: ConnectionSettings,
    providers: Mapping[str, ProviderDef],
    base_dir: Path,
    discover: str | None = None,
    *,
    where: str,
) -> AuthConfig:
    """The scheme's settings as an :class:`AuthConfig`: references resolved, providers looked up."""
    fields = config.model_dump(
        exclude={"provider", "provider_params", "client_secret", "service_account_file", "secret"}
    )
    if isinstance(config, _STATIC_SETTINGS) and config.secret is not None:
        fields["secret_source"], fields["secret"] = _configured(config.secret, base_dir, where)
    if isinstance(config, _TOKEN_SETTINGS):
        if config.provider is not None:
            fields["provider"] = lookup(providers, config.provider).with_params(config.provider_params)
        if config.client_secret is not None:
            fields["client_secret"] = resolve_static(SecretRef.parse(config.client_secret), base_dir=base_dir)
        fields["scopes"] = tuple(config.scopes)
    if isinstance(config, JwtBearerConnection) and config.service_account_file is not None:
        fields["service_account"] = ServiceAccount.from_file(_path(config.service_account_file, base_dir))
    binding = AuthConfig(**fields, discover=discover)
    if binding.secret is not None:  # a header template naming a field the secret lacks: said at load
        build_auth(binding, Material(secret=binding.secret), StaticToken(binding.secret))
    return binding


def _configured(refs: str | Mapping[str, str], base_dir: Path, where: str) -> tuple[str, Secret | None]:
    """A configured secret (``secret: env:NAME``, or field → reference) read now; None, with a warning,
    when a reference cannot be read (calls then say which one: the hub still starts)."""
    named = {"secret": refs} if isinstance(refs, str) else dict(refs)
    source = ", ".join(named.values())
    values: dict[str, Secret] = {}
    for field_name, ref in named.items():
        try:
            values[field_name] = resolve_static(SecretRef.parse(ref), base_dir=base_dir)
        except ConfigurationError as exc:
            logger.warning("%s: %s (%s)", where, exc.message, exc.hint)
            return source, None
    if isinstance(refs, str):
        return source, values["secret"]
    return source, Secret(json.dumps({k: v.reveal() for k, v in values.items()}))


_STATIC_SETTINGS = (ApiKeyConnection, BasicConnection, BearerConnection, HeaderConnection)
_TOKEN_SETTINGS = (
    OAuth2Connection,
    ClientCredentialsConnection,
    JwtBearerConnection,
    TokenExchangeConnection,
)


def _path(text: str, base_dir: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path
