"""Seeded fault injection at a connector's boundary.

``ChaosConnector(inner, faults, seed=...)`` behaves like ``inner`` except that, for each call, it may
inject one fault drawn from ``faults`` with the given probabilities. Faults are raised as the errors a
real transport would produce, so the resilience layer treats them exactly as it treats real ones:

| kind | what happens | error |
|---|---|---|
| ``latency`` | waits ``seconds`` (± ``jitter``), then calls through | — |
| ``status`` | no call; answers ``status`` with optional ``retry_after`` | ``UpstreamStatusError`` |
| ``reset_before`` | no call; the connection fails before sending | ``UpstreamUnavailable(sent=False)`` |
| ``reset_after`` | effect applied upstream, then the answer is lost | ``UpstreamUnavailable(sent=True)`` |
| ``hang`` | waits until cancelled (the attempt timeout or the deadline ends it) | — |
| ``truncated`` | the call goes through; the answer is cut short | ``UpstreamUnavailable(sent=True)`` |
| ``trickle`` | the call goes through; the answer arrives ``seconds`` late | — |
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from toolbridge.catalog import Tool
from toolbridge.connectors import Connector, Invocation, key_carrier
from toolbridge.errors import ConfigurationError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["ChaosConnector", "Fault", "FaultKind"]

FaultKind = Literal["latency", "status", "reset_before", "reset_after", "hang", "truncated", "trickle"]
_KINDS = ("latency", "status", "reset_before", "reset_after", "hang", "truncated", "trickle")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    rate: float
    """Probability per call, 0..1; the rates of all faults of a connector add up to at most 1."""
    seconds: float = 0.0
    jitter: float = 0.0
    status: int = 503
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigurationError(
                f"unknown fault kind {self.kind!r}", hint=f"use one of {', '.join(_KINDS)}"
            )
        if not 0 <= self.rate <= 1:
            raise ConfigurationError(f"fault rate {self.rate} is not a probability", hint="use 0 to 1")


class ChaosConnector:
    """Wraps any connector; ``injected`` counts the faults injected, by kind."""

    def __init__(self, inner: Connector, faults: Sequence[Fault], *, seed: int = 0) -> None:
        if sum(f.rate for f in faults) > 1 + 1e-9:
            raise ConfigurationError("fault rates add up to more than 1", hint="lower the rates")
        self._inner = inner
        self._faults = list(faults)
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return self._inner.name

    def tools(self) -> Sequence[Tool]:
        return self._inner.tools()

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        return key_carrier(self._inner, tool)

    async def __aenter__(self) -> ChaosConnector:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.__aexit__(*exc_info)

    def _draw(self) -> Fault | None:
        roll = self._rng.random()
        for fault in self._faults:
            if roll < fault.rate:
                return fault
            roll -= fault.rate
        return None

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        fault = self._draw()
        if fault is None:
            return await self._inner.invoke(tool, arguments, invocation)
        self.injected[fault.kind] += 1
        return await self._inject(fault, tool, arguments, invocation)

    async def _inject(
        self, fault: Fault, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation
    ) -> Any:
        if fault.kind == "status":
            raise UpstreamStatusError(
                f"injected {fault.status}",
                upstream_status=fault.status,
                retry_after=fault.retry_after,
                tool=tool.name,
            )
        if fault.kind == "reset_before":
            raise UpstreamUnavailable("injected connection reset before sending", sent=False, tool=tool.name)
        if fault.kind == "hang":
            await anyio.sleep_forever()
        if fault.kind == "latency":
            await anyio.sleep(max(0.0, fault.seconds + self._rng.uniform(-fault.jitter, fault.jitter)))
            return await self._inner.invoke(tool, arguments, invocation)
        result = await self._inner.invoke(tool, arguments, invocation)  # the effect happens upstream
        if fault.kind == "trickle":
            await anyio.sleep(fault.seconds)
            return result
        what = "reset after sending" if fault.kind == "reset_after" else "truncated response"
        raise UpstreamUnavailable(f"injected {what}", sent=True, tool=tool.name)
