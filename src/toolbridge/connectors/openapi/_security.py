"""Security schemes: what a connection must supply, and how a secret goes onto a request.

Until the credentials layer lands, each scheme's secret comes from the connector's configuration
(``auth: {scheme: env:NAME}``, resolved at the edge into :class:`Secret` values).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from toolbridge.connectors.openapi._model import Operation, SecurityScheme
from toolbridge.connectors.openapi._request import Draft
from toolbridge.connectors.openapi._serialize import encode
from toolbridge.errors import CredentialsError

__all__ = ["Secret", "apply_security"]


class Secret:
    """A secret value whose ``repr`` and ``str`` are masked. ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


def apply_security(
    draft: Draft,
    operation: Operation,
    schemes: Mapping[str, SecurityScheme],
    secrets: Mapping[str, Secret],
) -> None:
    """Satisfy the first security alternative of ``operation`` whose secrets are all configured."""
    if not operation.security:
        return
    for alternative in operation.security:
        if all(name in secrets and name in schemes for name in alternative):
            for name in alternative:
                _apply(draft, schemes[name], secrets[name])
            return
    if any(not alternative for alternative in operation.security):
        return
    raise _missing(operation, schemes)


def _apply(draft: Draft, scheme: SecurityScheme, secret: Secret) -> None:
    value = secret.reveal()
    if scheme.type == "apiKey" and scheme.param:
        if scheme.location == "query":
            draft.query.append(f"{encode(scheme.param)}={encode(value)}")
        elif scheme.location == "cookie":
            draft.cookies.append((scheme.param, encode(value)))
        else:
            draft.headers[scheme.param] = value
    elif scheme.type == "http" and scheme.scheme == "basic":
        token = value if ":" not in value else base64.b64encode(value.encode()).decode()
        draft.headers["Authorization"] = f"Basic {token}"
    elif scheme.type == "http" and scheme.scheme not in (None, "bearer"):
        draft.headers["Authorization"] = f"{scheme.scheme.capitalize()} {value}"
    elif scheme.type in ("http", "oauth2", "openIdConnect"):
        draft.headers["Authorization"] = f"Bearer {value}"


def _missing(operation: Operation, schemes: Mapping[str, SecurityScheme]) -> CredentialsError:
    options = [
        " + ".join(f"{n} ({schemes[n].describe() if n in schemes else 'undeclared scheme'})" for n in alt)
        for alt in operation.security
    ]
    first = operation.security[0][0] if operation.security[0] else "scheme"
    return CredentialsError(
        f"{operation.method} {operation.path} needs credentials: " + " or ".join(options),
        tool=operation.tool,
        hint=f"configure the secret in toolbridge.yaml, e.g. 'auth: {{{first}: env:VARIABLE}}'",
    )
