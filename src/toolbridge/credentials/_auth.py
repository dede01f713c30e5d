"""Build the ``httpx2.Auth`` flow of a connection from its connector's scheme and its vault material."""

from __future__ import annotations

import json

import httpx2

from toolbridge.credentials._config import AuthConfig
from toolbridge.credentials._schemes import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HeaderTemplateAuth,
    SigV4Auth,
    StaticToken,
    TokenSource,
)
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._store import Material
from toolbridge.errors import ConfigurationError

__all__ = ["build_auth", "fields_of"]


def build_auth(binding: AuthConfig, material: Material, tokens: TokenSource) -> httpx2.Auth:
    if binding.uses_tokens:
        return BearerAuth(tokens)
    secret = material.secret
    if secret is None:
        raise ConfigurationError(
            f"a {binding.scheme} connection has no secret", hint="add it again with a secret"
        )
    if binding.scheme == "api_key":
        return ApiKeyAuth(binding.name, StaticToken(secret), location=binding.location)
    if binding.scheme == "bearer":
        return BearerAuth(StaticToken(secret), prefix=binding.prefix)
    if binding.scheme == "basic":
        if binding.username is not None:
            return BasicAuth(binding.username, secret)
        user, sep, password = secret.reveal().partition(":")
        if not sep:
            raise ConfigurationError(
                "a basic-auth secret without a configured username must be 'user:password'"
            )
        return BasicAuth(user, Secret(password))
    fields = fields_of(secret)
    if binding.scheme == "header":
        return HeaderTemplateAuth(binding.templates, fields)
    assert binding.region is not None and binding.service is not None
    try:
        return SigV4Auth(
            access_key_id=fields["access_key_id"].reveal(),
            secret_access_key=fields["secret_access_key"],
            session_token=fields.get("session_token"),
            region=binding.region,
            service=binding.service,
        )
    except KeyError as exc:
        raise ConfigurationError(
            f"a sigv4 connection secret needs the field {exc}",
            hint='store {"access_key_id": ..., "secret_access_key": ...}',
        ) from None


def fields_of(secret: Secret) -> dict[str, Secret]:
    """A JSON object secret becomes named fields; anything else is the single field ``secret``."""
    try:
        doc = json.loads(secret.reveal())
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return {str(k): Secret(str(v)) for k, v in doc.items() if v is not None}
    return {"secret": secret}
