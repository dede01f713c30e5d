"""The resilience layer around a connector's invoke: ejection → rate limit → bulkhead → breaker → attempts.

One :class:`Resilience` per hub holds per-connector state (breaker, retry budget, bulkhead, upstream
hold). With a limiter that shares state between replicas (:class:`RedisLimiter`), the rate limits, the
holds an upstream asks for (``Retry-After``, ``RateLimit: r=0``), the circuit breakers and the outlier
ejection of connections are shared too: a hold is published when an attempt ends and read before each
attempt; the shared breaker (and ejection) admits each attempt and counts its outcome. ``async with`` it
opens and closes its limiter.

Every retry names what it retries (the classifier), is capped by attempts and by the call deadline — the
last sleep never crosses it — and uses full-jitter backoff. ``Resilience(sleep=...)`` replaces the waits
in tests; the waits asked for are still recorded in :attr:`Resilience.waits`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from toolbridge._clock import now
from toolbridge._trace import attempt_span, retry_reason
from toolbridge.errors import (
    CredentialsError,
    OutcomeUnknown,
    RateLimited,
    ToolbridgeError,
    UpstreamBusy,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.resilience._breaker import BreakerState, CircuitBreaker, Transition, refusal
from toolbridge.resilience._budget import RetryBudget
from toolbridge.resilience._classify import Action, Decision, classify
from toolbridge.resilience._outlier import Ejection, OutlierDetector
from toolbridge.resilience._policy import NOT_PROCESSED_STATUSES, ResiliencePolicy
from toolbridge.resilience._ratelimit import HoldStore, Limit, MemoryLimiter, RateLimiter, parse_rate
from toolbridge.resilience._shared_breaker import BreakerStore, SharedVerdict
from toolbridge.resilience._shared_outlier import OutlierStore

__all__ = ["Attempt", "ConnectorHealth", "Resilience"]

T = TypeVar("T")
logger = logging.getLogger("toolbridge.resilience")
CHECK_FIRST = (
    "check whether it took effect before calling again: calling again may apply it twice (a tool whose "
    "idempotency key reaches the upstream is retried safely with the same key)"
)
"""The hint of an ``outcome_unknown``: what the agent must do before anything else."""
MAYBE_APPLIED = (
    "the upstream failed after it received this write and may have applied it before failing: check "
    "whether it took effect before calling again (calling again may apply it twice; a call with an "
    "idempotency key that reaches the upstream is retried safely)"
)
"""The hint of a 5xx other than 503 on a write that is not safe to repeat ("try again later" would
apply it twice wherever the upstream failed after its effect)."""
SAME_KEY = (
    "call again with the same idempotency key: the upstream applies it once (a new key could apply it twice)"
)
"""Added to the hint of a keyed write left unstored after a transient failure (it may have been applied)."""
_WAITS_KEPT = 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the layer knows about one call."""

    connector: str
    tool: str
    idempotent: bool
    deadline: float | None
    refresh: Callable[[], Awaitable[None]] | None = None
    connection: str | None = None
    """The connection whose credentials the call uses, when outlier ejection watches it (per-user ones)."""


@dataclass(frozen=True, slots=True)
class ConnectorHealth:
    connector: str
    breaker: str
    failure_rate: float
    attempts: int
    in_flight: int
    retry_tokens: float
    held_for: float
    """Seconds new calls still wait because the upstream asked for a pause."""
    ejected: tuple[Ejection, ...] = ()
    """Connections taken out of service for failing again and again (outlier ejection)."""


@dataclass
class _State:
    policy: ResiliencePolicy
    breaker: CircuitBreaker
    budget: RetryBudget
    bulkhead: anyio.CapacityLimiter
    outliers: OutlierDetector
    limit: Limit | None = None
    hold_until: float = 0.0
    shared_until: float = 0.0
    """The end of the hold known to be in the shared store (published or read from it)."""
    attempts: int = 0
    transitions: list[Transition] = field(default_factory=list)
    shared: SharedVerdict | None = None
    """The shared breaker as last heard of (None: never asked, or this process's breaker decides)."""
    shared_at: float = 0.0
    """When ``shared`` was heard (this process's clock): an open period it told of ends ``wait`` later."""


class Resilience:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = now,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        limiter: RateLimiter | None = None,
        holds: HoldStore | None = None,
        breakers: BreakerStore | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.clock = self._clock = clock
        self._sleep = sleep or anyio.sleep
        self._rng = rng or random.Random()
        self.limiter: RateLimiter = limiter or MemoryLimiter(clock)
        self.holds = holds if holds is not None else limiter if isinstance(limiter, HoldStore) else None
        """Where upstream holds are shared (default: the limiter, when it shares them); None: this process."""
        shares = getattr(self.limiter, "shared_breakers", None)
        self.breakers = breakers if breakers is not None else shares() if callable(shares) else None
        """Where the breakers are shared (default: beside the limiter's, when it shares state); None: each
        process has its own."""
        shares = getattr(self.limiter, "shared_outliers", None)
        self.outliers: OutlierStore | None = shares() if callable(shares) else None
        """Where outlier ejection is shared (beside the breakers); None: each process ejects on its own."""
        self._stack: AsyncExitStack | None = None
        self.on_transition = on_transition
        """Called with every breaker transition (the event log records them)."""
        self._states: dict[str, _State] = {}
        self._policies: dict[str, ResiliencePolicy] = {}
        self.waits: deque[float] = deque(maxlen=_WAITS_KEPT)
        """The latest waits asked for (a bounded ring: the newest ``_WAITS_KEPT``), for tests and reports."""

    async def __aenter__(self) -> Resilience:
        """Open what the limiter and the hold store need (a Redis client: checked to answer)."""
        stack = AsyncExitStack()
        seen: list[object] = []
        for part in (self.limiter, self.holds):
            if isinstance(part, AbstractAsyncContextManager) and all(part is not s for s in seen):
                seen.append(part)
                await stack.enter_async_context(part)
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    def configure(self, connector: str, policy: ResiliencePolicy) -> None:
        if policy.rate:
            parse_rate(policy.rate, burst=policy.burst)  # fail at start, not at the first call
        self._policies[connector] = policy
        self._states.pop(connector, None)

    def state(self, connector: str) -> _State:
        state = self._states.get(connector)
        if state is None:
            policy = self._policies.get(connector, ResiliencePolicy())
            breaker = CircuitBreaker(
                connector, policy.breaker, clock=self._clock, rng=self._rng, on_transition=self._transition
            )
            state = _State(
                policy,
                breaker,
                RetryBudget(policy.retry),
                anyio.CapacityLimiter(policy.bulkhead.max_concurrent),
                OutlierDetector(connector, policy.outlier, clock=self._clock),
                limit=parse_rate(policy.rate, burst=policy.burst) if policy.rate else None,
            )
            self._states[connector] = state
        return state

    def health(self, connectors: list[str]) -> list[ConnectorHealth]:
        """A snapshot per connector (state appears once a connector has been called)."""
        out = []
        for name in connectors:
            st = self.state(name)
            rate = st.shared.failure_rate if st.shared is not None else st.breaker.failure_rate
            out.append(
                ConnectorHealth(
                    name,
                    self.breaker_state(name),
                    round(rate, 3),
                    st.attempts,
                    st.budget.active,
                    round(st.budget.tokens, 2),
                    round(max(0.0, st.hold_until - self._clock()), 3),
                    tuple(st.outliers.ejected()),
                )
            )
        return out

    def breaker_state(self, connector: str) -> str:
        """``closed``, ``open`` or ``half_open``: the shared breaker as last heard of, else this process's.

        An open period that has ended reads ``half_open`` (what the next call would find), not ``open``
        until a call comes to ask."""
        state = self.state(connector)
        shared = state.shared
        if shared is None:
            return state.breaker.state.value
        if shared.state is BreakerState.OPEN and self._clock() >= state.shared_at + shared.wait:
            return BreakerState.HALF_OPEN.value
        return shared.state.value

    def hold(self, connector: str, seconds: float) -> None:
        """The upstream asked for a pause (``RateLimit: r=0;t=…``): hold new calls that long."""
        state = self.state(connector)
        state.hold_until = max(state.hold_until, self._clock() + seconds)

    def _transition(self, transition: Transition) -> None:
        state = self._states.get(transition.name)
        if state is not None:
            state.transitions.append(transition)
        if self.on_transition is not None:
            self.on_transition(transition)

    async def run(self, attempt: Attempt, fn: Callable[[], Awaitable[T]]) -> T:
        state = self.state(attempt.connector)
        await self._admit_connection(state, attempt)  # an ejected connection fails fast
        wait = await self._held(state, attempt.connector)  # the pause the upstream asked for, if any
        if state.limit is not None:  # awaited only when there is one (most connectors have none)
            wait = max(wait, await self._reserve(state.limit, state.policy, attempt))
        self._admit(state, attempt, wait)
        if wait > 0:
            await self._pause(wait)
        try:
            state.bulkhead.acquire_nowait()
        except anyio.WouldBlock:
            await self._queue(state, attempt)
        state.budget.active += 1
        try:
            return await self._attempts(state, attempt, fn)
        finally:
            state.budget.active -= 1
            state.bulkhead.release()

    async def _queue(self, state: _State, attempt: Attempt) -> None:
        """Wait (bounded) for a free slot in the connector's bulkhead."""
        try:
            with anyio.fail_after(state.policy.bulkhead.max_wait):
                await state.bulkhead.acquire()
        except TimeoutError:
            raise UpstreamBusy(
                f"connector {attempt.connector!r} already has {state.policy.bulkhead.max_concurrent} calls "
                "in progress",
                tool=attempt.tool,
                hint="try again shortly, or raise bulkhead.max_concurrent",
            ) from None

    async def _held(self, state: _State, connector: str) -> float:
        """Seconds left of the connector's hold: this process's, or the shared one when longer."""
        if self.holds is not None:
            shared = await self.holds.held(connector)
            if shared > 0:
                end = self._clock() + shared
                state.hold_until = max(state.hold_until, end)
                state.shared_until = max(state.shared_until, end)
        return max(0.0, state.hold_until - self._clock())

    async def _publish(self, state: _State, connector: str) -> None:
        """Share a hold this process learned of (the attempt's ``Retry-After`` or ``RateLimit``)."""
        if self.holds is None or state.hold_until <= state.shared_until:
            return
        state.shared_until = state.hold_until
        await self.holds.hold(connector, state.hold_until - self._clock())

    def _admit(self, state: _State, attempt: Attempt, wait: float) -> None:
        """Refuse a call that would wait longer than the connector allows (or than its deadline). A call
        with no wait ahead is let through even when its deadline has passed: the call deadline answers it
        as a timeout, not as a pause the upstream never asked for."""
        if wait > 0 and wait > self._max_wait(state.policy.max_rate_wait, attempt):
            raise RateLimited(
                f"the upstream of {attempt.connector!r} asked for a pause",
                retry_after=wait,
                tool=attempt.tool,
            )

    async def _reserve(self, limit: Limit, policy: ResiliencePolicy, attempt: Attempt) -> float:
        """The wait (bounded) booked under the connector's outbound rate limit."""
        booked = await self.limiter.reserve(
            f"out:{attempt.connector}", limit, max_wait=self._max_wait(policy.max_rate_wait, attempt)
        )
        if booked is None:
            raise RateLimited(
                f"connector {attempt.connector!r} is at its outbound limit of {policy.rate}",
                retry_after=limit.interval,
                policy=str(limit),
                tool=attempt.tool,
            )
        return booked

    def _max_wait(self, configured: float, attempt: Attempt) -> float:
        if attempt.deadline is None:
            return configured
        return min(configured, attempt.deadline - self._clock())

    async def _attempts(self, state: _State, attempt: Attempt, fn: Callable[[], Awaitable[T]]) -> T:
        """Attempt until success or a final failure. The one retry after a credentials refresh is extra:
        it does not use up an attempt (a connector with ``max_attempts: 1`` still gets its refresh)."""
        retry = state.policy.retry
        refreshed = False
        number = 1
        why: str | None = None  # the previous attempt's classification, on the next one's trace span
        while True:
            await self._before_call(state, attempt.connector)
            state.attempts += 1
            retrying = number > 1 or refreshed
            state.budget.retrying += retrying
            try:
                with attempt_span(attempt.connector, attempt.tool, why):
                    result = await self._one(fn, retry.attempt_timeout, attempt)
            except ToolbridgeError as exc:
                decision = classify(exc, idempotent=attempt.idempotent, policy=retry)
                counted = decision.failure and not state.outliers.ejects(attempt.connection)
                await self._outcome(state, attempt.connector, counted)  # not an ejected one's failures
                ejected = await self._record_connection(state, attempt, decision.failure)
                why = retry_reason(exc, decision.action.value)
                if decision.failure:
                    state.budget.on_failure()
                if decision.wait is not None and decision.wait <= retry.max_retry_after:
                    state.hold_until = max(state.hold_until, self._clock() + decision.wait)
                await self._publish(state, attempt.connector)
                if decision.action is Action.REFRESH and not refreshed and attempt.refresh is not None:
                    refreshed = True
                    await attempt.refresh()
                    continue
                self._raise_unless_retry(decision, exc, attempt, state, number)
                if ejected:  # its next calls fail fast; this one ends with the failure it had
                    raise exc
                await self._backoff(state, attempt, decision, number, exc)
                number += 1
            else:
                await self._outcome(state, attempt.connector, False)
                await self._record_connection(state, attempt, False)
                state.budget.on_success()
                await self._publish(state, attempt.connector)  # a RateLimit header's hold
                return result
            finally:
                state.budget.retrying -= retrying

    async def _admit_connection(self, state: _State, attempt: Attempt) -> None:
        """Refuse a call of an ejected connection: the shared detector decides when there is one that
        answers, else this process's."""
        local, connection = state.outliers, attempt.connection
        verdict = None
        if self.outliers is not None and connection is not None and local.policy.enabled:
            verdict = await self.outliers.admit(attempt.connector, connection, local.policy)
        if verdict is None or connection is None:
            local.admit(connection, attempt.tool)
        elif verdict.ejected:
            local.note(connection, verdict.seconds, verdict.ejections)  # for health
            raise local.refusal(connection, verdict.seconds, verdict.ejections, attempt.tool)

    async def _record_connection(self, state: _State, attempt: Attempt, failure: bool) -> bool:
        """Count an attempt's outcome for its connection; True when it ejected the connection."""
        local, connection = state.outliers, attempt.connection
        if self.outliers is not None and connection is not None and local.policy.enabled:
            verdict = await self.outliers.record(attempt.connector, connection, local.policy, failure)
            if verdict is not None:
                if verdict.ejected:
                    local.note(connection, verdict.seconds, verdict.ejections)
                return verdict.ejected
        return local.record(connection, failure)

    async def _before_call(self, state: _State, connector: str) -> None:
        """Let the attempt through or raise ``CircuitOpen``: the shared breaker decides when there is one
        that answers, else this process's."""
        policy = state.policy.breaker
        verdict = None
        if self.breakers is not None and policy.enabled:
            verdict = await self.breakers.admit(connector, policy)
        if verdict is None:
            state.shared = None
            state.breaker.before_call()
            return
        self._heard(state, connector, verdict)
        if not verdict.allowed:
            raise refusal(connector, verdict.failure_rate, verdict.wait)

    async def _outcome(self, state: _State, connector: str, failure: bool) -> None:
        """Count an attempt's outcome in the shared breaker (when it answers) or in this process's."""
        policy = state.policy.breaker
        if self.breakers is not None and policy.enabled:
            opening = policy.open_seconds * self._rng.uniform(0.8, 1.2)  # replicas don't probe in lockstep
            verdict = await self.breakers.record(connector, policy, failure, opening)
            if verdict is not None:
                self._heard(state, connector, verdict)
                return
        state.shared = None
        state.breaker.record(failure)

    def _heard(self, state: _State, connector: str, verdict: SharedVerdict) -> None:
        """Keep the shared breaker's answer; report a transition this process's call made."""
        state.shared, state.shared_at = verdict, self._clock()
        if verdict.left is not None and verdict.left is not verdict.state:
            logger.warning(
                "circuit breaker %s (shared): %s -> %s (failure rate %.0f%%)",
                connector,
                verdict.left.value,
                verdict.state.value,
                verdict.failure_rate * 100,
            )
            self._transition(Transition(connector, verdict.left, verdict.state, verdict.failure_rate))

    def _raise_unless_retry(
        self, decision: Decision, exc: ToolbridgeError, attempt: Attempt, state: _State, number: int
    ) -> None:
        if decision.action is Action.UNKNOWN:
            raise OutcomeUnknown(
                f"{attempt.tool!r} may or may not have taken effect: {exc.message}",
                tool=attempt.tool,
                hint=CHECK_FIRST,
            ) from exc
        if decision.action is Action.REFRESH:
            raise CredentialsError(
                f"the upstream of {attempt.tool!r} refused the credentials (401)",
                tool=attempt.tool,
                hint="the credentials were refused even after a refresh: reconnect the account (OAuth), or "
                "replace the connection's secret ('toolbridge connections add'; when toolbridge.yaml "
                "configures it with 'secret: env:…', change that variable and restart)",
            ) from exc
        if decision.action is Action.FAIL:
            if not attempt.idempotent and _maybe_applied(exc):
                exc.hint = MAYBE_APPLIED
            raise exc
        if number >= state.policy.retry.max_attempts:
            exc.retried = number > 1  # retried here until the attempts ran out: for no layer to retry again
            raise exc
        if not state.budget.can_retry():
            logger.warning("retry budget of %s exhausted; not retrying %s", attempt.connector, attempt.tool)
            raise exc

    async def _backoff(
        self, state: _State, attempt: Attempt, decision: Decision, number: int, exc: ToolbridgeError
    ) -> None:
        retry = state.policy.retry
        if decision.wait is not None:
            if decision.wait > retry.max_retry_after:
                raise exc
            delay = decision.wait + self._rng.uniform(0, min(1.0, retry.base_delay))
        else:
            delay = self._rng.uniform(0, min(retry.max_delay, retry.base_delay * 2 ** (number - 1)))
        if self.holds is not None:  # another replica may have been told to pause for longer
            delay = max(delay, await self._held(state, attempt.connector))
        if attempt.deadline is not None and self._clock() + delay >= attempt.deadline:
            raise exc  # the wait would cross the call deadline: fail now, with the upstream's hint
        await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self._sleep(seconds)

    async def _one(self, fn: Callable[[], Awaitable[T]], per_attempt: float | None, attempt: Attempt) -> T:
        limit = per_attempt
        if attempt.deadline is not None:
            remaining = attempt.deadline - self._clock()
            limit = remaining if limit is None else min(limit, remaining)
        if limit is None:
            return await fn()
        with anyio.move_on_after(max(limit, 0.0)) as scope:
            return await fn()
        assert scope.cancelled_caught
        raise UpstreamUnavailable(
            f"the attempt did not finish within {limit:.3g} s", sent=True, tool=attempt.tool
        )


def _maybe_applied(exc: ToolbridgeError) -> bool:
    """An upstream error status that does not say the request went unprocessed (500, 502, 504 …)."""
    return (
        isinstance(exc, UpstreamStatusError)
        and exc.upstream_status >= 500
        and exc.upstream_status not in NOT_PROCESSED_STATUSES
    )
