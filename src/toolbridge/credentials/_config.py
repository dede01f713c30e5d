"""How one connector authenticates: a frozen value built from ``toolbridge.yaml`` (or by hand)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from toolbridge.credentials._jwt import ServiceAccount
from toolbridge.credentials._providers import ProviderDef
from toolbridge.credentials._secret import Secret
from toolbridge.errors import ConfigurationError

__all__ = ["SCHEMES", "AuthConfig", "Policy", "Scheme"]

Scheme = Literal[
    "api_key",
    "basic",
    "bearer",
    "header",
    "oauth2",
    "client_credentials",
    "jwt_bearer",
    "sigv4",
    "token_exchange",
]
SCHEMES: tuple[Scheme, ...] = get_args(Scheme)
Policy = Literal["shared", "per_user", "per_user_or_shared"]
"""Whose connection a call uses: the one an operator shares, the caller's own, or its own else the shared."""
TOKEN_SCHEMES = frozenset({"oauth2", "client_credentials", "jwt_bearer", "token_exchange"})
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
MAX_STATE_TTL = 600.0


@dataclass(frozen=True, slots=True)
class AuthConfig:
    scheme: Scheme
    name: str = "X-API-Key"
    """api_key: header, query parameter or cookie name."""
    location: Literal["header", "query", "cookie"] = "header"
    username: str | None = None
    """basic: the user name (the password is the connection's secret)."""
    prefix: str = "Bearer"
    templates: Mapping[str, str] = field(default_factory=dict)
    """header: ``{"Authorization": "Token {secret}"}``; fields are the connection secret's JSON keys."""
    provider: ProviderDef | None = None
    client_id: str | None = None
    client_secret: Secret | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    redirect_uri: str | None = None
    resource: str | None = None
    """RFC 8707 resource indicator sent in the authorization and token requests."""
    discover: str | None = None
    """oauth2: the MCP upstream whose authorization server, scopes and resource are discovered at connect
    time (and whose client is registered dynamically without a ``client_id``); see ``_mcp_connect``."""
    service_account: ServiceAccount | None = field(default=None, repr=False)
    subject: str | None = None
    region: str | None = None
    service: str | None = None
    refresh_skew: float = 60.0
    state_ttl: float = MAX_STATE_TTL
    probe_url: str | None = None
    probe_method: str = "GET"
    secret: Secret | None = field(default=None, repr=False)
    """A static scheme's configured shared connection (``secret:`` in ``toolbridge.yaml``): served
    without the vault; None with ``secret_source`` set when the reference could not be read."""
    secret_source: str | None = None
    """Where the configured secret comes from (``env:NAME``; for messages), None without one."""
    policy: Policy = "shared"
    """Whose connection a call uses (see :data:`Policy`); per-user connections belong to a principal."""
    subject_connector: str | None = None
    """token_exchange: the connector whose (per-user) connection holds the caller's identity token, which
    is exchanged (RFC 8693) for this connector's token."""
    audience: str | None = None
    """token_exchange: the ``audience`` asked for (the upstream the exchanged token is for)."""

    @property
    def per_user(self) -> bool:
        return self.policy != "shared"

    @property
    def minted_per_caller(self) -> bool:
        """Tokens obtained for each caller on first use, without a connect: an RFC 8693 exchange of its
        identity token, or an RFC 7523 assertion whose ``sub`` names it (``subject: "{name}@corp.com"``)."""
        return self.scheme == "token_exchange" or (self.scheme == "jwt_bearer" and self.policy == "per_user")

    def subject_for(self, owner: str) -> str | None:
        """jwt_bearer: the assertion's ``sub`` — ``subject`` with ``{name}`` / ``{principal}`` filled in for
        the connection's owner (``agent:alice`` → name ``alice``)."""
        if self.subject is None or not owner:
            return self.subject
        return self.subject.replace("{name}", owner.partition(":")[2]).replace("{principal}", owner)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigurationError(
                f"auth scheme {self.scheme!r} is unknown", hint="choose one of " + ", ".join(SCHEMES)
            )
        if self.discover is not None and self.scheme != "oauth2":
            raise ConfigurationError("only the 'oauth2' scheme discovers its authorization server")
        if self.scheme in TOKEN_SCHEMES and self.provider is None and self.discover is None:
            raise ConfigurationError(f"auth scheme {self.scheme!r} needs a provider (its token endpoint)")
        if self.scheme in ("oauth2", "client_credentials") and not self.client_id and self.discover is None:
            raise ConfigurationError(f"auth scheme {self.scheme!r} needs a client_id")
        if self.scheme == "token_exchange" and (not self.subject_connector or self.policy != "per_user"):
            raise ConfigurationError(
                "auth scheme 'token_exchange' needs subject_connector and policy: per_user",
                hint="each caller's identity token (its connection to subject_connector) is exchanged "
                "for a token of its own",
            )
        if self.scheme == "jwt_bearer" and self.policy == "per_user" and "{" not in (self.subject or ""):
            raise ConfigurationError(
                "a per-user jwt_bearer connector needs a subject naming the caller",
                hint='write e.g. subject: "{name}@corp.example.com" (the agent name is filled in)',
            )
        if self.configured and (self.uses_tokens or self.scheme == "sigv4" or self.per_user):
            raise ConfigurationError(
                f"a configured secret is for a shared api_key, basic, bearer or header connection, "
                f"not {self.scheme} ({self.policy})"
            )
        if self.scheme == "sigv4" and not (self.region and self.service):
            raise ConfigurationError("auth scheme 'sigv4' needs region and service")
        if not 0 < self.state_ttl <= MAX_STATE_TTL:
            raise ConfigurationError(
                "state_ttl must be between 0 and 600 seconds (RFC 9700: short-lived state)"
            )

    @property
    def configured(self) -> bool:
        """The shared connection is configured with its secret (served without the vault)."""
        return self.secret is not None or self.secret_source is not None

    @property
    def undiscovered(self) -> bool:
        """An MCP binding whose authorization server is not known yet (before its first connect)."""
        return self.discover is not None and (self.provider is None or not self.client_id)

    @property
    def uses_tokens(self) -> bool:
        return self.scheme in TOKEN_SCHEMES

    def scope_string(self) -> str | None:
        assert self.provider is not None
        scopes = [
            *self.provider.default_scopes,
            *(s for s in self.scopes if s not in self.provider.default_scopes),
        ]
        return self.provider.scope_separator.join(scopes) or None

    @property
    def probe(self) -> tuple[str, str] | None:
        url = self.probe_url or (self.provider.probe_url if self.provider else None)
        method = (
            self.probe_method if self.probe_url else (self.provider.probe_method if self.provider else "GET")
        )
        return (method, url) if url else None
