"""The document's security schemes → which kinds of connection (``connections: scheme:``) can satisfy them.

One table, checked where a connector with ``connections:`` is built (the hub, ``toolbridge connections
add``): a connection fits the connector when it fits at least one scheme some operation requires.

| document scheme | connection schemes that fit |
|---|---|
| ``apiKey`` (header, query, cookie) | ``api_key`` with the same name and location, ``header`` (header keys) |
| ``http`` ``basic`` | ``basic``, ``header`` (``Authorization: Basic {secret}``: a secret already encoded) |
| ``http`` ``bearer`` | ``bearer``, ``oauth2``, ``client_credentials``, ``jwt_bearer`` |
| ``http`` other (``digest`` …) | ``header`` |
| ``oauth2``, ``openIdConnect`` | ``oauth2``, ``client_credentials``, ``jwt_bearer``, ``bearer`` |
| ``mutualTLS`` | none (not supported) |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from toolbridge.connectors.openapi._model import SecurityScheme
from toolbridge.errors import ConfigurationError

__all__ = ["Need", "check_fit", "need_of"]

_TOKENS = frozenset({"bearer", "oauth2", "client_credentials", "jwt_bearer"})


@dataclass(frozen=True, slots=True)
class Need:
    """What one security scheme of the document asks of a connection."""

    scheme: str
    """The scheme's name in the document (``components.securitySchemes``)."""
    description: str
    kinds: frozenset[str]
    """Connection schemes (``toolbridge.credentials.SCHEMES``) that can satisfy it."""
    param: str | None = None
    """apiKey: the header, query parameter or cookie name."""
    location: str | None = None
    """apiKey: ``header``, ``query`` or ``cookie``."""

    def fits(self, kind: str, name: str, location: str) -> bool:
        if kind not in self.kinds:
            return False
        if kind == "api_key" and self.param is not None:
            return name.lower() == self.param.lower() and location == self.location
        return True

    def explain(self) -> str:
        kinds = ", ".join(sorted(self.kinds)) or "no connection kind"
        where = f" with name={self.param!r} location={self.location}" if self.param else ""
        return f"{self.scheme!r} ({self.description}): {kinds}{where}"


def need_of(scheme: SecurityScheme) -> Need:
    return Need(scheme.name, scheme.describe(), _kinds(scheme), *_place(scheme))


def _kinds(scheme: SecurityScheme) -> frozenset[str]:
    if scheme.type == "apiKey":
        return frozenset({"api_key", "header"} if scheme.location == "header" else {"api_key"})
    if scheme.type == "http":
        if scheme.scheme == "basic":
            return frozenset({"basic", "header"})
        return _TOKENS if scheme.scheme in (None, "bearer") else frozenset({"header"})
    if scheme.type in ("oauth2", "openIdConnect"):
        return _TOKENS
    return frozenset()


def _place(scheme: SecurityScheme) -> tuple[str | None, str | None]:
    return (scheme.param, scheme.location) if scheme.type == "apiKey" else (None, None)


def check_fit(where: str, needs: Sequence[Need], kind: str, name: str, location: str) -> None:
    """Raise a :class:`ConfigurationError` naming the document's schemes when the connection fits none.

    ``where`` starts the message (``connectors.NAME.connections``); ``kind``, ``name`` and ``location`` are
    the connector's ``connections:`` scheme, and for ``api_key``
    its parameter name and location. A document without security requirements accepts any connection.
    """
    if not needs or any(need.fits(kind, name, location) for need in needs):
        return
    got = f"{kind} (name={name!r}, location={location})" if kind == "api_key" else kind
    raise ConfigurationError(
        f"{where}: a {got} connection fits none of the document's security schemes",
        hint="the document asks for " + "; or ".join(n.explain() for n in needs),
    )
