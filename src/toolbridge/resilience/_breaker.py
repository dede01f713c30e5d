"""Circuit breaker: closed → open on a failure rate over a sliding window → half-open trial calls.

Defaults follow resilience4j: 50% failures over the last 100 calls, at least ``minimum_calls`` recorded,
open for 60 s (jittered ±20% so replicas don't probe in lockstep), then 10 trial calls.
"""

from __future__ import annotations

import enum
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from toolbridge.errors import CircuitOpen
from toolbridge.resilience._policy import BreakerPolicy

__all__ = ["BreakerState", "CircuitBreaker", "Transition", "refusal"]

logger = logging.getLogger("toolbridge.resilience")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    old: BreakerState
    new: BreakerState
    failure_rate: float


def refusal(name: str, failure_rate: float, wait: float) -> CircuitOpen:
    """The error of a call an open (or busy half-open) breaker turns away."""
    return CircuitOpen(
        f"connector {name!r} is failing ({failure_rate:.0%} of recent calls); "
        "calls are refused for now to let it recover",
        retry_after=wait,
        hint=f"try again in {wait:.0f} s",
    )


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float],
        rng: random.Random,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self._on_transition = on_transition
        self._window: deque[bool] = deque(maxlen=policy.window)
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._trials_left = 0
        self._trial_results: list[bool] = []

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._move(BreakerState.HALF_OPEN, self._rate(self._window))
            self._trials_left = self.policy.half_open_calls
            self._trial_results = []
        return self._state

    @property
    def failure_rate(self) -> float:
        return self._rate(self._window)

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpen` (fail fast: the upstream is never reached)."""
        if not self.policy.enabled:
            return
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and self._trials_left > 0:
            self._trials_left -= 1
            return
        wait = max(0.0, self._open_until - self._clock()) if state is BreakerState.OPEN else 1.0
        raise refusal(self.name, self.failure_rate, wait)

    def record(self, failure: bool) -> None:
        if not self.policy.enabled:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._trial_results.append(failure)
            if len(self._trial_results) >= self.policy.half_open_calls:
                self._close_or_open()
            return
        self._window.append(failure)
        if self._state is BreakerState.CLOSED and self._should_open():
            self._open(self._rate(self._window))

    def _close_or_open(self) -> None:
        rate = self._rate(self._trial_results)
        if rate >= self.policy.failure_rate:
            self._open(rate)
        else:
            self._window.clear()
            self._move(BreakerState.CLOSED, rate)

    def _should_open(self) -> bool:
        return (
            len(self._window) >= self.policy.minimum_calls
            and self._rate(self._window) >= self.policy.failure_rate
        )

    def _open(self, rate: float) -> None:
        jitter = self._rng.uniform(0.8, 1.2)
        self._open_until = self._clock() + self.policy.open_seconds * jitter
        self._move(BreakerState.OPEN, rate)

    def _move(self, new: BreakerState, rate: float) -> None:
        old, self._state = self._state, new
        logger.warning(
            "circuit breaker %s: %s -> %s (failure rate %.0f%%)", self.name, old.value, new.value, rate * 100
        )
        if self._on_transition is not None:
            self._on_transition(Transition(self.name, old, new, rate))

    @staticmethod
    def _rate(results: deque[bool] | list[bool]) -> float:
        return sum(results) / len(results) if results else 0.0
