"""What every connector implements: tools out, invocations in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from toolbridge.catalog import Tool

if TYPE_CHECKING:
    import httpx2

    from toolbridge.policy import Principal

__all__ = ["Connector", "Credentials", "Invocation", "key_carrier"]


@runtime_checkable
class Credentials(Protocol):
    """Resolved credentials for one call, from the credentials layer (None for connectors without auth).

    ``auth`` goes on the connector's requests (``client.send(request, auth=credentials.auth)``); ``refresh``
    (None for static secrets) is what the resilience layer calls once after an upstream 401.
    """

    @property
    def auth(self) -> httpx2.Auth: ...

    @property
    def refresh(self) -> Callable[[], Awaitable[None]] | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Invocation:
    """Everything a connector may know about one call besides the tool and its arguments."""

    principal: Principal
    request_id: str
    deadline: float | None = None
    """``anyio.current_time()`` value by which the call must finish, or None for no deadline."""
    credentials: Credentials | None = None
    connection: str | None = None
    idempotency_key: str | None = None
    hold: Callable[[float], None] | None = None
    """Call with N seconds when the upstream says it is out of quota for N seconds (RateLimit headers)."""


@runtime_checkable
class Connector(Protocol):
    """Turns (tool, arguments, credentials) into a request on its transport and back into a result.

    Connectors are async context managers: the Hub enters them when it starts and exits them when it
    closes, so pooled clients and subprocesses have one explicit lifetime.
    """

    @property
    def name(self) -> str: ...

    def tools(self) -> Sequence[Tool]: ...

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any: ...

    async def __aenter__(self) -> Connector: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def key_carrier(connector: object, tool: Tool) -> str | None:
    """How ``connector`` sends a call's idempotency key upstream for ``tool`` ("header Idempotency-Key"),
    or None when it does not.

    A connector says so with an optional ``idempotency_key_carrier(tool)`` method. Only a key that
    travels makes a retry safe: when it does not, a keyed write is not retried once its request may have
    reached the upstream (the caller gets ``outcome_unknown``, as for a write without a key).
    """
    describe = getattr(connector, "idempotency_key_carrier", None)
    if describe is None:
        return None
    carrier = describe(tool)
    return carrier if isinstance(carrier, str) else None
