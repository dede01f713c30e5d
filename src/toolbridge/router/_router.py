"""The router: capabilities as tools, each served by the first of its providers that can.

A capability is one tool in the catalog (``capability.store_file``). Calling it tries its providers in
order of preference; each try is a delegated call through the hub's call path (validation, credentials,
resilience, its own audit row under the capability call's request id). A provider is skipped to the next
when nothing was done — its breaker is open or the caller's connection to it ejected (both
``CircuitOpen``), its connection needs re-authorization, its tool awaits an operator's approval, it is
busy or out of quota, or it answered "not processed" (408, 425, 429, 503) after its own retries — or
when it failed ambiguously (500, 502, 504, a timeout) and repeating its work elsewhere is harmless (a
read-only or idempotent tool). Anything else (400, 403, 404, 409, 422, a write that may have happened)
stops the call and is reported as it came.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema

from toolbridge._shape import Shaped
from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.errors import (
    CircuitOpen,
    ConfigurationError,
    CredentialsError,
    NoProviderAvailable,
    RateLimited,
    TokenRefreshFailed,
    ToolbridgeError,
    ToolNotFound,
    ToolQuarantined,
    UpstreamBusy,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from toolbridge.resilience import BreakerPolicy, BulkheadPolicy, ResiliencePolicy, RetryPolicy
from toolbridge.resilience._idempotency import MAX_KEY_LENGTH
from toolbridge.resilience._policy import NOT_PROCESSED_STATUSES, RETRYABLE_STATUSES
from toolbridge.router._check import Loc, Problem, check_capability
from toolbridge.router._model import Capability, Provider

if TYPE_CHECKING:
    from toolbridge._shape import CallResult
    from toolbridge.catalog import Catalog
    from toolbridge.connectors import Invocation
    from toolbridge.policy import Principal

__all__ = ["ROUTER_POLICY", "Locate", "Router", "RouterHub"]

ROUTER_POLICY = ResiliencePolicy(
    retry=RetryPolicy(max_attempts=1, attempt_timeout=None),
    breaker=BreakerPolicy(enabled=False),
    bulkhead=BulkheadPolicy(max_concurrent=1_000_000, max_wait=0.0),
)
"""The router's own resilience: none. Each provider call has its connector's; the call deadline bounds all."""

Locate = Callable[[Loc, str, str | None], ConfigurationError]
"""Turns a problem's location into the error to raise (the configuration layer adds file and line)."""

_NOTHING_DONE = (
    CircuitOpen,
    UpstreamBusy,
    CredentialsError,
    TokenRefreshFailed,
    RateLimited,
    ToolQuarantined,  # changed upstream and awaiting an operator's approval
    ToolNotFound,  # gone from its upstream's list since the hub started
)


class RouterHub(Protocol):
    """What the router needs of the hub."""

    @property
    def catalog(self) -> Catalog: ...

    def connector_names(self) -> list[str]: ...

    async def delegate(
        self,
        principal: Principal,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        idempotency_key: str | None = None,
        budget: float | None = None,
    ) -> CallResult: ...

    def seconds_until(self, deadline: float) -> float: ...


class Router:
    """A connector whose tools are capabilities (``<name>.<capability>``); add it to the hub last."""

    def __init__(
        self,
        hub: RouterHub,
        capabilities: Sequence[Capability],
        *,
        name: str = "capability",
        rng: random.Random | None = None,
        locate: Locate | None = None,
    ) -> None:
        self._hub = hub
        self._name = name
        self._rng = rng or random.Random()
        self._locate = locate or _plain_error
        self._by_tool: dict[str, Capability] = {}
        for capability in capabilities:
            tool = f"{name}.{capability.name}"
            if tool in self._by_tool:
                raise ConfigurationError(f"two capabilities are named {capability.name!r}")
            self._by_tool[tool] = capability
        self._turns = {tool: itertools.count() for tool in self._by_tool}
        self._checkers: dict[str, jsonschema.protocols.Validator] = {}
        """Capability name → the validator of its output schema, made on first use."""

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> list[Capability]:
        return list(self._by_tool.values())

    def capability(self, tool: str) -> Capability:
        return self._by_tool[tool]

    def tools(self) -> list[Tool]:
        return [self._tool(tool, c) for tool, c in self._by_tool.items()]

    def check(self, *, complete: bool) -> None:
        """Raise the first problem of any capability (with how many more there are).

        ``complete``: the catalog is final (the hub started), so a provider tool not in it is unknown."""
        problems = [p for c in self._by_tool.values() for p in self.problems(c, complete=complete)]
        if problems:
            first, more = problems[0], len(problems) - 1
            suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            raise self._locate(first.loc, first.message + suffix, first.hint)

    def problems(self, capability: Capability, *, complete: bool) -> list[Problem]:
        catalog = self._hub.catalog
        return check_capability(
            capability,
            lambda name: catalog.get(name) if name in catalog else None,
            [t.name for t in catalog],
            connectors=frozenset(self._hub.connector_names()) - {self._name},
            router=self._name,
            complete=complete,
        )

    async def __aenter__(self) -> Router:
        self.check(complete=True)  # every connector has started: the catalog is final
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # -- a call --------------------------------------------------------------------------------------

    def order(self, tool: str) -> list[Provider]:
        """The providers of capability ``tool`` in the order this call tries them."""
        capability = self._by_tool[tool]
        providers = list(capability.providers)
        if capability.choice == "round_robin":
            start = next(self._turns[tool]) % len(providers)
            return providers[start:] + providers[:start]
        if capability.choice == "weighted":  # Efraimidis-Spirakis: a weighted shuffle
            return sorted(providers, key=lambda p: self._rng.random() ** (1.0 / p.weight), reverse=True)
        return providers

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        capability = self._by_tool[tool.name]
        skipped: list[tuple[Provider, ToolbridgeError]] = []
        order = self.order(tool.name)
        for position, provider in enumerate(order):
            try:
                result = await self._hub.delegate(
                    invocation.principal,
                    provider.tool,
                    capability.mapping(provider).apply(arguments),
                    request_id=invocation.request_id,
                    idempotency_key=_provider_key(invocation.idempotency_key, provider.tool),
                    budget=self._share(invocation, len(order) - position),
                )
            except ToolbridgeError as exc:
                if not self._fails_over(exc, provider):
                    raise
                skipped.append((provider, exc))
                continue
            if provider.result is None and capability.output_schema is None:
                return Shaped(result.text, result.size) if result.truncated else result.value
            if result.truncated:  # cut to text at the hub's cap: there is no value to map or check
                raise _too_large_to_shape(capability, provider, result.size)
            return self._shaped(capability, provider, result.value)
        raise _none_available(tool.name, skipped)

    def _shaped(self, capability: Capability, provider: Provider, value: Any) -> Any:
        """``provider``'s result as the capability answers it: through its ``result`` mapping, and
        fitting the capability's output schema. One that does not fit is the configuration's mistake,
        told as such: the call was done, and must not be made again."""
        shaped = value if provider.result is None else provider.result.apply(value)
        if capability.output_schema is None:
            return shaped
        error = jsonschema.exceptions.best_match(self._output_checker(capability).iter_errors(shaped))
        if error is None:
            return shaped
        where = "".join(f"[{p!r}]" for p in error.absolute_path) or "the result"
        index = capability.providers.index(provider)
        mapped = f" as providers.{index}.result maps it" if provider.result is not None else ""
        raise ConfigurationError(
            f"capability.{capability.name}: {provider.tool} did the call, but its result{mapped} does not "
            f"fit the capability's output schema: {where}: {error.message}",
            hint="the call was done: do not make it again; the operator must fix "
            f"capabilities.{capability.name}.providers.{index}.result (or the output schema) in "
            "toolbridge.yaml",
        )

    def _output_checker(self, capability: Capability) -> jsonschema.protocols.Validator:
        checker = self._checkers.get(capability.name)
        if checker is None:
            schema = capability.output_schema or {}
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            checker = self._checkers[capability.name] = cls(schema)
        return checker

    def _share(self, invocation: Invocation, left: int) -> float | None:
        """A provider's time: an equal share of what is left of the capability's deadline among the
        ``left`` providers still to try, and a little less for the last, so its timeout is answered (and
        audited) before the capability's own deadline. A provider given the whole deadline never timed
        out first: one that hung was never skipped, and its audit row was lost with the call."""
        if invocation.deadline is None:
            return None
        remaining = self._hub.seconds_until(invocation.deadline)
        return max(0.001, remaining / left * (0.95 if left == 1 else 1.0))

    def _fails_over(self, exc: ToolbridgeError, provider: Provider) -> bool:
        """Whether the next provider may be tried after ``exc``: nothing was done, or doing it again
        elsewhere is harmless."""
        if isinstance(exc, _NOTHING_DONE):
            return True
        if isinstance(exc, UpstreamUnavailable) and not exc.sent:
            return True
        if isinstance(exc, UpstreamStatusError) and exc.upstream_status in NOT_PROCESSED_STATUSES:
            return True
        ambiguous = isinstance(exc, UpstreamTimeout | UpstreamUnavailable) or (
            isinstance(exc, UpstreamStatusError) and exc.upstream_status in RETRYABLE_STATUSES
        )
        return ambiguous and self._repeatable(provider)

    def _repeatable(self, provider: Provider) -> bool:
        catalog = self._hub.catalog
        if provider.tool not in catalog:
            return False
        a = catalog.get(provider.tool).annotations
        return a.read_only or a.idempotent

    # -- the catalog entry ---------------------------------------------------------------------------

    def _tool(self, name: str, capability: Capability) -> Tool:
        return Tool(
            name=name,
            connector=self._name,
            description=capability.description,
            input_schema=capability.input_schema,
            output_schema=capability.output_schema,
            annotations=self._annotations(capability),
            title=capability.title,
        )

    def _annotations(self, capability: Capability) -> ToolAnnotations:
        """Read-only or idempotent only when every provider is (known once the hub started); destructive
        when any is: an agent's scope for the capability must cover what its providers do."""
        catalog = self._hub.catalog
        found = [catalog.get(p.tool) if p.tool in catalog else None for p in capability.providers]
        known = [t.annotations for t in found if t is not None]
        complete = len(known) == len(found)
        read_only = complete and all(a.read_only for a in known)
        return ToolAnnotations(
            read_only=read_only,
            destructive=not read_only and any(a.destructive for a in known),
            idempotent=complete and all(a.read_only or a.idempotent for a in known),
        )


def _provider_key(key: str | None, tool: str) -> str | None:
    """The idempotency key of one provider's call: the capability call's key, per provider."""
    if key is None:
        return None
    derived = f"{key}:{tool}"
    return derived if len(derived) <= MAX_KEY_LENGTH else hashlib.sha256(derived.encode()).hexdigest()


def _too_large_to_shape(capability: Capability, provider: Provider, size: int) -> ConfigurationError:
    index = capability.providers.index(provider)
    return ConfigurationError(
        f"capability.{capability.name}: {provider.tool} did the call, but its result ({size:,} bytes) is "
        f"over the result cap, so providers.{index}.result (or the output schema) cannot read it",
        hint="the call was done: do not make it again; the operator must raise limits.max_result_bytes in "
        "toolbridge.yaml, or have the provider answer less",
    )


def _none_available(tool: str, skipped: list[tuple[Provider, ToolbridgeError]]) -> NoProviderAvailable:
    waits = [w for _, e in skipped if (w := getattr(e, "retry_after", None)) is not None]
    reasons = "; ".join(f"{p.tool}: {e.code}" for p, e in skipped)
    return NoProviderAvailable(
        f"no provider of {tool!r} could serve the call ({reasons})",
        skipped=[{"tool": p.tool, "code": e.code} for p, e in skipped],
        retry_after=min(waits) if waits else None,
        tool=tool,
        hint="try again later; an operator can see each provider's state with 'toolbridge capabilities list'",
    )


def _plain_error(loc: Loc, message: str, hint: str | None) -> ConfigurationError:
    return ConfigurationError(f"{_dotted(loc)}: {message}" if loc else message, hint=hint)


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)
