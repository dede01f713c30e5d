"""The error of a call that needs credentials and has none, or has a connection of a kind the operation
does not take: which schemes, and how to configure them.

Credentials go on requests as the call's connection (``connections:`` of the connector; see
``toolbridge.credentials``): the connector sends its ``httpx2.Auth`` and never holds a secret itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolbridge.connectors.openapi._model import Operation, SecurityScheme
from toolbridge.connectors.openapi._needs import need_of
from toolbridge.errors import CredentialsError

__all__ = ["missing_credentials", "unfit_connection"]

Connection = tuple[str, str, str]
"""A connector's ``connections:`` scheme: kind, and for ``api_key`` its parameter name and location."""


def unfit_connection(
    connector: str, operation: Operation, schemes: Mapping[str, SecurityScheme], connection: Connection
) -> CredentialsError | None:
    """The error of calling ``operation`` with a connection that satisfies none of its security
    alternatives (a bot token for an OAuth-only operation), else None. The upstream would answer 401,
    and toolbridge would then advise reconnecting an account whose secret is fine for the others."""
    kind, name, location = connection
    if kind == "header":  # headers of the operator's own choosing: they may carry any scheme
        return None

    def fits(scheme: str) -> bool:
        return scheme not in schemes or need_of(schemes[scheme]).fits(kind, name, location)

    if not operation.security or any(all(fits(n) for n in alt) for alt in operation.security):
        return None
    error = missing_credentials(connector, operation, schemes)
    error.message = error.message.replace("needs credentials: ", f"takes no {kind} connection, only: ", 1)
    error.hint = (
        f"connector {connector!r}'s connections are {kind}: call this operation through a connector over "
        "the same document whose connections fit one of those schemes"
    )
    return error


def missing_credentials(
    connector: str, operation: Operation, schemes: Mapping[str, SecurityScheme]
) -> CredentialsError:
    options = [
        " + ".join(f"{n} ({schemes[n].describe() if n in schemes else 'undeclared scheme'})" for n in alt)
        for alt in operation.security
    ]
    return CredentialsError(
        f"{operation.method} {operation.path} needs credentials: " + " or ".join(options),
        tool=operation.tool,
        hint=f"give connector {connector!r} a connection, e.g. 'connections: {{scheme: api_key, name: "
        "X-API-Key, secret: env:VARIABLE}' in toolbridge.yaml (docs/openapi.md#credentials-from-connections)",
    )
