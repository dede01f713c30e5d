"""Rate limits by GCRA (the generic cell rate algorithm): exact, no window-boundary bursts.

``rate`` requests per second with a burst of ``burst``. A request at ``now`` conforms when
``tat - tau <= now`` where ``tat`` is the theoretical arrival time and ``tau = T·(burst-1)``; the wait
otherwise is exactly ``tat - tau - now``. :meth:`reserve` books a slot that may lie in the future (the
caller sleeps until it); :meth:`try_acquire` only takes a slot available now.

State lives in memory, or in Redis (one key per limit, updated by a Lua script) so that replicas share it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from toolbridge.errors import ConfigurationError, StorageError

logger = logging.getLogger("toolbridge.resilience")

__all__ = ["Limit", "MemoryLimiter", "RateLimiter", "RedisLimiter", "parse_rate"]

_UNITS = {
    "second": 1.0,
    "sec": 1.0,
    "s": 1.0,
    "minute": 60.0,
    "min": 60.0,
    "m": 60.0,
    "hour": 3600.0,
    "h": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    period: float
    burst: int

    @property
    def interval(self) -> float:
        return self.period / self.count

    @property
    def tolerance(self) -> float:
        return self.interval * (self.burst - 1)

    def __str__(self) -> str:
        return f"{self.count};w={self.period:g};burst={self.burst}"


def parse_rate(text: str, *, burst: int | None = None) -> Limit:
    """``5000/hour``, ``10/second``, ``100/15min`` → :class:`Limit` (burst defaults to ``count``)."""
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None or int(match.group(1)) <= 0:
        raise ConfigurationError(
            f"rate {text!r} is not a rate",
            hint="write it as COUNT/UNIT, for example '5000/hour' or '10/second'",
        )
    count, multiple = int(match.group(1)), int(match.group(2) or 1)
    size = burst if burst is not None else count
    if size <= 0:
        raise ConfigurationError(f"burst {size} must be positive", hint="use a burst of at least 1")
    return Limit(count, unit * multiple, size)


class RateLimiter(Protocol):
    async def reserve(self, key: str, limit: Limit, *, max_wait: float) -> float | None:
        """Book the next slot; return seconds to wait for it, or None if that is over ``max_wait``."""

    async def try_acquire(self, key: str, limit: Limit) -> float:
        """Take a slot now and return 0, or return the seconds until one is free (taking nothing)."""


class MemoryLimiter:
    """GCRA state in this process (the default: one process, SQLite)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def reserve(self, key: str, limit: Limit, *, max_wait: float) -> float | None:
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        wait = _clean(tat - limit.tolerance - now)
        if wait > max_wait:
            return None
        self._tat[key] = tat + limit.interval
        return wait

    async def try_acquire(self, key: str, limit: Limit) -> float:
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        wait = _clean(tat - limit.tolerance - now)
        if wait > 0:
            return wait
        self._tat[key] = tat + limit.interval
        return 0.0


def _redis_error() -> type[Exception]:
    """redis's base error, imported only when a RedisLimiter is used (importing toolbridge stays light)."""
    from redis.exceptions import RedisError

    return RedisError


def _clean(wait: float) -> float:
    """Clamp float noise (1e-13 from summed intervals) so a conforming request waits exactly 0."""
    return wait if wait > 1e-9 else 0.0


_GCRA_LUA = """
local now = tonumber(ARGV[1]); local interval = tonumber(ARGV[2]); local tolerance = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4]); local commit_if_waiting = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 1e-9 then wait = 0 end
if wait > max_wait then return tostring(-1) end
if wait > 0 and commit_if_waiting == 0 then return tostring(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now + tolerance) * 1000) + 1000)
if commit_if_waiting == 0 then return '0' end
return tostring(wait)
"""


class RedisLimiter:
    """GCRA state in Redis, shared by every replica. ``clock`` must be wall-clock time (``time.time``).

    Every decision is bounded by ``timeout``: when Redis is slow or unreachable the call is refused
    (fail closed, the default) or allowed (``fail_open=True``, for cheap read-only traffic), and an error
    is logged either way: a limiter outage never hangs a call.
    """

    def __init__(
        self,
        redis: Any,
        clock: Callable[[], float],
        *,
        prefix: str = "toolbridge:rl:",
        timeout: float = 0.25,
        fail_open: bool = False,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._prefix = prefix
        self._timeout = timeout
        self._fail_open = fail_open
        self._script = redis.register_script(_GCRA_LUA)

    async def _run(self, key: str, limit: Limit, max_wait: float, commit: bool) -> float:
        try:
            with anyio.fail_after(self._timeout):
                raw = await self._script(
                    keys=[self._prefix + key],
                    args=[self._clock(), limit.interval, limit.tolerance, max_wait, int(commit)],
                )
        except (TimeoutError, OSError, _redis_error()) as exc:
            mode = "open" if self._fail_open else "closed"
            logger.error("rate-limit store unreachable (%s); failing %s", type(exc).__name__, mode)
            if self._fail_open:
                return 0.0
            raise StorageError(
                f"the rate-limit store did not answer within {self._timeout:g} s",
                hint="the call was refused to protect the upstream; retry shortly",
            ) from exc
        return float(raw)

    async def reserve(self, key: str, limit: Limit, *, max_wait: float) -> float | None:
        wait = await self._run(key, limit, max_wait, True)
        return None if wait < 0 else wait

    async def try_acquire(self, key: str, limit: Limit) -> float:
        return await self._run(key, limit, 1e12, False)
