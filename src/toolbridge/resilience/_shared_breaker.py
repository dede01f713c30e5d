"""Circuit breakers shared by replicas through Redis: one window, one state, one set of trial calls.

A breaker per process lets an outage cost every replica its own ``minimum_calls`` failures before each
fails fast, and lets the replicas probe a recovering upstream each with its own trial calls. Shared, the
outcomes of every replica fill one window (a Redis list of 0/1, its failures counted in a hash), the
first replica whose outcome trips it opens it for all, and the ``half_open_calls`` trial calls are
counted across the replicas. Each decision is one Lua script on **Redis's clock** (``TIME``), so replicas
whose clocks disagree share the open period. The replica whose outcome moved the breaker reports the
transition (logged, ``on_transition``): one event per transition, not one per replica.

Trial calls that never report (their replica died mid-call) would hold a half-open breaker for good: a
half-open round lasts at most ``open_seconds``, then new trials are let through.

Every decision is bounded by ``timeout``. When Redis does not answer, :meth:`RedisBreakers.admit` and
:meth:`RedisBreakers.record` return None (a warning is logged) and the process's own breaker decides;
Redis is asked again ``retry_after`` seconds later (an outage does not add a timeout to every call).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import anyio

from toolbridge.resilience._breaker import BreakerState
from toolbridge.resilience._policy import BreakerPolicy

__all__ = ["BreakerStore", "RedisBreakers", "SharedScripts", "SharedVerdict"]

logger = logging.getLogger("toolbridge.resilience")

_KEPT_MS = 86_400_000
"""A breaker's keys outlive their last write by a day (a connector removed leaves nothing for good)."""

_NOW = """
local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_RATE = """
local function rate(fails, n) if n > 0 then return string.format('%.6f', fails / n) end return '0' end
local function window_rate()
  return rate(tonumber(redis.call('HGET', KEYS[1], 'fails') or '0'), redis.call('LLEN', KEYS[2]))
end
"""

_ADMIT_LUA = (
    _NOW
    + _RATE
    + """
local trials, round_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local phase = redis.call('HGET', KEYS[1], 'phase') or 'closed'
local moved = ''
if phase == 'open' then
  local ends = tonumber(redis.call('HGET', KEYS[1], 'until'))
  if now < ends then return {0, ends - now, phase, moved, window_rate()} end
  phase = 'half_open'; moved = 'open'
  redis.call('HSET', KEYS[1], 'phase', phase)
end
if phase == 'half_open' and (moved ~= '' or now >= tonumber(redis.call('HGET', KEYS[1], 'until'))) then
  redis.call('HSET', KEYS[1], 'admitted', 0, 'trials', 0, 'failed', 0, 'until', now + round_ms)
end
if phase == 'half_open' then
  if tonumber(redis.call('HGET', KEYS[1], 'admitted')) >= trials then
    return {0, 1000, phase, moved, window_rate()}
  end
  redis.call('HINCRBY', KEYS[1], 'admitted', 1)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return {1, 0, phase, moved, window_rate()}
"""
)
"""ARGV: half_open_calls, the longest half-open round (ms), the keys' lifetime (ms). Returns allowed
(0/1), the wait (ms), the phase after, the phase it left ('' if none) and the window's failure rate."""

_RECORD_LUA = (
    _NOW
    + _RATE
    + """
local failure, size, minimum = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local threshold, trials, open_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local phase = redis.call('HGET', KEYS[1], 'phase') or 'closed'
if phase == 'open' then return {phase, '', window_rate()} end -- an outcome of a call let in before
local moved, shown = '', '0'
if phase == 'half_open' then
  local tried = redis.call('HINCRBY', KEYS[1], 'trials', 1)
  local failed = redis.call('HINCRBY', KEYS[1], 'failed', failure)
  shown = rate(failed, tried)
  if tried >= trials then
    moved = phase
    if failed / tried >= threshold then
      phase = 'open'
      redis.call('HSET', KEYS[1], 'phase', phase, 'until', now + open_ms)
    else
      phase = 'closed'
      redis.call('HSET', KEYS[1], 'phase', phase, 'fails', 0)
      redis.call('DEL', KEYS[2])
    end
  end
else
  redis.call('LPUSH', KEYS[2], failure)
  local fails = redis.call('HINCRBY', KEYS[1], 'fails', failure)
  local n = redis.call('LLEN', KEYS[2])
  while n > size do -- the oldest outcomes leave the window (HINCRBY refuses '-0': only failures count)
    if redis.call('RPOP', KEYS[2]) == '1' then fails = redis.call('HINCRBY', KEYS[1], 'fails', -1) end
    n = n - 1
  end
  shown = rate(fails, n)
  if n >= minimum and fails / n >= threshold then
    moved = phase; phase = 'open'
    redis.call('HSET', KEYS[1], 'phase', phase, 'until', now + open_ms)
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
return {phase, moved, shown}
"""
)
"""ARGV: failure (0/1), window, minimum_calls, failure_rate, half_open_calls, this opening's jittered
length (ms), the keys' lifetime (ms). Returns the phase after, the phase it left ('' if none) and the
failure rate that decided (the window's, or the trial calls')."""


@dataclass(frozen=True, slots=True)
class SharedVerdict:
    """What the shared breaker said: whether the call may go, and its state as the replicas see it."""

    allowed: bool
    wait: float
    """Seconds until the breaker lets calls through again (for ``Retry-After``), when not allowed."""
    state: BreakerState
    failure_rate: float
    left: BreakerState | None = None
    """The state this decision moved the breaker out of (None: it stayed where it was)."""


@runtime_checkable
class BreakerStore(Protocol):
    """Where the breakers of several processes are kept as one."""

    async def admit(self, name: str, policy: BreakerPolicy) -> SharedVerdict | None:
        """May a call to connector ``name`` go? None: the store did not answer (the process decides)."""

    async def record(
        self, name: str, policy: BreakerPolicy, failure: bool, open_seconds: float
    ) -> SharedVerdict | None:
        """Count one outcome; ``open_seconds`` is how long to open for if it trips the breaker now."""


class SharedScripts:
    """Lua scripts run in Redis for state the replicas share, each bounded by ``timeout``. When Redis
    fails to answer, :meth:`_call` answers None (the process decides) and Redis is left alone for
    ``retry_after`` seconds."""

    what = "shared state"
    """What a warning names ("the shared circuit breaker of X did not answer")."""
    fallback = "this process's"
    """Who decides meanwhile, as the warning says it."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "toolbridge:breaker:",
        timeout: float = 0.25,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = prefix
        self._timeout = timeout
        self._retry_after = retry_after
        self._clock = clock
        self._silent_until = 0.0

    async def _call(self, script: Any, name: str, keys: list[str], args: list[Any]) -> list[Any] | None:
        from toolbridge.resilience._ratelimit import _redis_error

        if self._clock() < self._silent_until:
            return None  # Redis failed a moment ago: the process decides until it is asked again
        try:
            with anyio.fail_after(self._timeout):
                return list(await script(keys=keys, args=args))
        except (TimeoutError, OSError, _redis_error()) as exc:
            self._silent_until = self._clock() + self._retry_after
            logger.warning(
                "the %s of %s did not answer (%s); %s decides (Redis is asked again in %g s)",
                self.what,
                name,
                type(exc).__name__,
                self.fallback,
                self._retry_after,
            )
            return None


class RedisBreakers(SharedScripts):
    """Shared breakers in Redis: ``<prefix><connector>`` (a hash) and ``<prefix><connector>:w`` (the
    window). The client is the caller's (:meth:`RedisLimiter.shared_breakers` shares the limiter's)."""

    what = "shared circuit breaker"
    fallback = "this process's breaker"

    def __init__(self, redis: Any, **options: Any) -> None:
        super().__init__(redis, **options)
        self._admit = redis.register_script(_ADMIT_LUA)
        self._record = redis.register_script(_RECORD_LUA)

    async def admit(self, name: str, policy: BreakerPolicy) -> SharedVerdict | None:
        round_ms = math.ceil(policy.open_seconds * 1000)
        reply = await self._run(self._admit, name, [policy.half_open_calls, round_ms, _KEPT_MS])
        if reply is None:
            return None
        allowed, wait_ms, phase, left, rate = reply
        return SharedVerdict(bool(int(allowed)), int(wait_ms) / 1000, _state(phase), float(rate), _left(left))

    async def record(
        self, name: str, policy: BreakerPolicy, failure: bool, open_seconds: float
    ) -> SharedVerdict | None:
        args = [
            int(failure),
            policy.window,
            policy.minimum_calls,
            policy.failure_rate,
            policy.half_open_calls,
            math.ceil(open_seconds * 1000),
            max(_KEPT_MS, math.ceil(open_seconds * 2000)),
        ]
        reply = await self._run(self._record, name, args)
        if reply is None:
            return None
        phase, left, rate = reply
        state = _state(phase)
        wait = open_seconds if state is BreakerState.OPEN else 0.0
        return SharedVerdict(state is not BreakerState.OPEN, wait, state, float(rate), _left(left))

    async def _run(self, script: Any, name: str, args: list[Any]) -> list[Any] | None:
        key = self._prefix + name
        return await self._call(script, name, [key, key + ":w"], args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _state(phase: bytes | str) -> BreakerState:
    return BreakerState(_text(phase))


def _left(phase: bytes | str) -> BreakerState | None:
    return BreakerState(_text(phase)) if _text(phase) else None
