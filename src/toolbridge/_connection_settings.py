"""The ``connections:`` block of a connector: one settings model per ``scheme`` (pydantic, wire edge;
docs/credentials.md). Re-exported by :mod:`toolbridge.settings`, where the connector kinds use them."""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKeyConnection",
    "BasicConnection",
    "BearerConnection",
    "ClientCredentialsConnection",
    "ConnectionSettings",
    "HeaderConnection",
    "JwtBearerConnection",
    "OAuth2Connection",
    "SigV4Connection",
    "TokenExchangeConnection",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ConnectionBase(_Model):
    """What every connection scheme takes (docs/credentials.md). Secrets are references, never values."""

    refresh_skew: Annotated[float, Field(ge=0)] = 60.0
    probe_url: str | None = None
    probe_method: Literal["GET", "POST"] = "GET"
    policy: Literal["shared", "per_user", "per_user_or_shared"] = "shared"
    """Whose connection a call uses: the one an operator shares, the caller's own, or its own else the
    shared one (docs/credentials.md#per-user-connections)."""


def _file_reference(ref: str, example: str, *, attachable: bool = True) -> None:
    """Refuse what is not ``env:NAME`` or ``file:PATH`` in a connection's secret: a ``vault:NAME`` (a
    reference, but to the vault, which connections declared in the file do not read) is told so, not
    taken for the secret itself."""
    prefix, _, rest = ref.partition(":")
    if prefix in ("env", "file") and rest:
        return
    if prefix == "vault" and rest:
        attach = (
            f", or store the secret in the vault and attach it with "
            f"'toolbridge connections add CONNECTOR --secret vault:{rest}' (docs/credentials.md)"
        )
        raise ValueError(
            f"a connection declared here reads its secret from 'env:NAME' or 'file:PATH', not the vault: "
            f"write {example!r}{attach if attachable else ''}"
        )
    raise ValueError(f"write a reference such as {example!r} or 'file:/run/secret', not the secret")


class _StaticConnection(_ConnectionBase):
    """The schemes whose connection holds one static secret (or a JSON object of fields)."""

    secret: str | dict[str, str] | None = None
    """The operator's shared connection, configured here instead of stored in the vault: a reference
    (``env:NAME`` or ``file:PATH``), or field → reference for the fields of a JSON secret
    (``header`` templates). Read when the configuration is loaded; never the secret itself."""

    @pydantic.field_validator("secret")
    @classmethod
    def _references(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        for ref in [value] if isinstance(value, str) else (value or {}).values():
            _file_reference(ref, "env:API_KEY")
        return value

    @pydantic.model_validator(mode="after")
    def _shared(self) -> _StaticConnection:
        if self.secret is not None and self.policy != "shared":
            raise ValueError(
                "a connection whose secret is configured here is the operator's shared one: "
                "use policy: shared, or drop 'secret' and let each caller add their own"
            )
        return self


class ApiKeyConnection(_StaticConnection):
    scheme: Literal["api_key"]
    name: str = "X-API-Key"
    location: Literal["header", "query", "cookie"] = "header"


class BasicConnection(_StaticConnection):
    scheme: Literal["basic"]
    username: str | None = None
    """The user name (the connection's secret is the password); without it the secret is 'user:password'."""


class BearerConnection(_StaticConnection):
    scheme: Literal["bearer"]
    prefix: str = "Bearer"


class HeaderConnection(_StaticConnection):
    scheme: Literal["header"]
    templates: dict[str, str] = {}
    """``{"Authorization": "Token {secret}"}``; fields are the connection secret's JSON keys."""


class SigV4Connection(_ConnectionBase):
    scheme: Literal["sigv4"]
    region: str
    service: str


class _TokenConnection(_ConnectionBase):
    """The schemes whose connections hold tokens from an OAuth token endpoint."""

    provider: str | None = None
    """A built-in OAuth provider (github, google, …) or one under ``providers:``."""
    provider_params: dict[str, str] = {}
    client_id: str | None = None
    client_secret: str | None = None
    """``env:NAME`` or ``file:PATH`` — never the secret itself."""
    scopes: list[str] = []
    resource: str | None = None
    audience: str | None = None

    @pydantic.field_validator("client_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None:
            _file_reference(value, "env:CLIENT_SECRET", attachable=False)
        return value


class OAuth2Connection(_TokenConnection):
    scheme: Literal["oauth2"]
    redirect_uri: str | None = None
    state_ttl: Annotated[float, Field(gt=0, le=600)] = 600.0


class ClientCredentialsConnection(_TokenConnection):
    scheme: Literal["client_credentials"]


class JwtBearerConnection(_TokenConnection):
    scheme: Literal["jwt_bearer"]
    service_account_file: str | None = None
    subject: str | None = None


class TokenExchangeConnection(_TokenConnection):
    scheme: Literal["token_exchange"]
    subject_connector: str
    """The connector whose per-user connection holds the caller's identity token."""


ConnectionSettings = Annotated[
    ApiKeyConnection
    | BasicConnection
    | BearerConnection
    | HeaderConnection
    | SigV4Connection
    | OAuth2Connection
    | ClientCredentialsConnection
    | JwtBearerConnection
    | TokenExchangeConnection,
    Field(discriminator="scheme"),
]
"""How the connections of one connector authenticate: one model per ``scheme``, so a setting that does
not belong to the scheme (``provider`` on an ``api_key`` connection) or a missing one (``region`` of
``sigv4``) is reported at load time with the file and line."""
