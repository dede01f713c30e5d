"""The error of a call that needs credentials and has none: which schemes, and how to configure them.

Credentials go on requests as the call's connection (``connections:`` of the connector; see
``toolbridge.credentials``): the connector sends its ``httpx2.Auth`` and never holds a secret itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolbridge.connectors.openapi._model import Operation, SecurityScheme
from toolbridge.errors import CredentialsError

__all__ = ["missing_credentials"]


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
