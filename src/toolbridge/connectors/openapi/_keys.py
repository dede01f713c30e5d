"""Idempotency keys on the wire: the header a call's key travels in, for one operation.

The operation's own declared header wins (a header parameter named ``Idempotency-Key``,
``X-Idempotency-Key``, ``Idempotency-Token`` …) over the connector's ``idempotency_header`` setting
(``Idempotency-Key`` by default), which carries the key of operations that declare none. The setting None
(``idempotency_header: none``) means "this upstream takes no keys" and wins over the document: an upstream
that declares a key header and ignores it would apply twice a write retried with the key. A key the agent
passed itself as that header's argument is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from toolbridge.connectors.openapi._model import Operation
from toolbridge.connectors.openapi._request import Draft

__all__ = ["DEFAULT_KEY_HEADER", "add_key", "declared_key_header", "documents_keys", "key_header"]

DEFAULT_KEY_HEADER = "Idempotency-Key"
_DECLARED = re.compile(r"^(x-)?idempotency[-_]?(key|token)$", re.IGNORECASE)


def declared_key_header(operation: Operation) -> str | None:
    """The idempotency header the document declares for ``operation``, if any."""
    for parameter in operation.parameters:
        if parameter.location == "header" and _DECLARED.match(parameter.name):
            return parameter.name
    return None


def key_header(operation: Operation, configured: str | None) -> str | None:
    """The header a call's key is sent in: the declared one, else the configured one; None when the connector
    is configured to send no keys (whatever the document declares) or nothing names a header."""
    if configured is None:
        return None
    return declared_key_header(operation) or configured


def documents_keys(operations: Iterable[Operation]) -> bool:
    """Whether any operation of the document declares an idempotency header."""
    return any(declared_key_header(op) is not None for op in operations)


def add_key(draft: Draft, header: str | None, key: str | None) -> None:
    """Put the call's key in ``header`` unless the request carries that header already."""
    if header is None or key is None:
        return
    if any(name.lower() == header.lower() for name in draft.headers):
        return
    draft.headers[header] = key
