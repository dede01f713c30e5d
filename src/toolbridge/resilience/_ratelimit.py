"""Rate limits by GCRA (the generic cell rate algorithm): exact, no window-boundary bursts.

``rate`` requests per second with a burst of ``burst``. A request at ``now`` conforms when
``tat - tau <= now`` where ``tat`` is the theoretical arrival time and ``tau = T·(burst-1)``; the wait
otherwise is exactly ``tat - tau - now``. :meth:`reserve` books a slot that may lie in the future (the
caller sleeps until it); :meth:`try_acquire` only takes a slot available now.

State lives in memory, or in Redis (one key per limit, updated by a Lua script) so that replicas share it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from toolbridge.errors import ConfigurationError, StorageError

if TYPE_CHECKING:
    from toolbridge.resilience._shared_breaker import RedisBreakers
    from toolbridge.resilience._shared_outlier import RedisOutliers

logger = logging.getLogger("toolbridge.resilience")

__all__ = [
    "HoldStore",
    "Limit",
    "MemoryLimiter",
    "RateLimiter",
    "RedisLimiter",
    "parse_rate",
    "redacted_redis_url",
]

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
if redis.replicate_commands then redis.replicate_commands() end -- Redis < 5: TIME needs effect replication
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1]); local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3]); local commit_if_waiting = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 1e-9 then wait = 0 end
if wait > max_wait then return '-1' end
if wait > 0 and commit_if_waiting == 0 then return string.format('%.17g', wait) end
local new_tat = tat + interval
local ttl = math.ceil((new_tat - now + tolerance) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl)
if commit_if_waiting == 0 then return '0' end
return string.format('%.17g', wait)
"""
"""GCRA on Redis's own clock (``TIME``): replicas whose clocks disagree still share one schedule. A
theoretical arrival time is kept with 17 significant digits (``tostring`` keeps 14: 0.1 ms at epoch
seconds, enough to turn a conforming call into a refused one)."""

_HOLD_LUA = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ms then
  local t = redis.call('TIME')
  local ends = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ms
  redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', ms)
end
return redis.call('PTTL', KEYS[1])
"""
"""Extend (never shorten) a connector's hold; the value is its end in Redis's milliseconds (for people
reading the key), the expiry decides."""


@runtime_checkable
class HoldStore(Protocol):
    """Where the pauses an upstream asked for (``Retry-After``, ``RateLimit: r=0``) are shared."""

    async def hold(self, key: str, seconds: float) -> None:
        """Pause calls under ``key`` for ``seconds`` from now (a longer hold already set stays)."""

    async def held(self, key: str) -> float:
        """Seconds calls under ``key`` are still paused (0 when they are not)."""


class RedisLimiter:
    """GCRA state in Redis, shared by every replica, and the upstreams' holds (:class:`HoldStore`).

    Decisions use Redis's clock (``TIME`` in the script), not the replica's: a replica whose clock is off
    neither books slots the others wait for nor takes slots they booked. ``clock`` is accepted for
    compatibility and not used.

    Every decision is bounded by ``timeout``: when Redis is slow or unreachable the call is refused
    (fail closed, the default) or allowed (``fail_open=True``, for cheap read-only traffic), and an error
    is logged either way: a limiter outage never hangs a call. A hold that cannot be read or written is
    left to the process's own copy (logged): holds are advice, the rate limits are the contract.

    ``RedisLimiter.from_url(url)`` owns its client: ``async with`` it checks that Redis answers (a
    :class:`StorageError` naming the URL, without its password, when it does not) and closes it after.
    """

    def __init__(
        self,
        redis: Any,
        clock: Callable[[], float] | None = None,
        *,
        prefix: str = "toolbridge:rl:",
        hold_prefix: str = "toolbridge:hold:",
        breaker_prefix: str = "toolbridge:breaker:",
        timeout: float = 0.25,
        fail_open: bool = False,
    ) -> None:
        del clock  # Redis's TIME decides
        self._redis = redis
        self._prefix = prefix
        self._hold_prefix = hold_prefix
        self._breaker_prefix = breaker_prefix
        self._timeout = timeout
        self._fail_open = fail_open
        self._script = redis.register_script(_GCRA_LUA)
        self._hold_script = redis.register_script(_HOLD_LUA)
        self._url: str | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "toolbridge:", timeout: float = 0.25) -> RedisLimiter:
        """A limiter on its own client for ``url`` (``redis://[:password@]host:port/db``, ``rediss://``,
        ``unix://``), keys under ``prefix``; closed when its ``async with`` block ends."""
        import redis.asyncio as redis_asyncio

        client = redis_asyncio.Redis.from_url(url, socket_connect_timeout=_OPEN_TIMEOUT)
        limiter = cls(
            client,
            prefix=f"{prefix}rl:",
            hold_prefix=f"{prefix}hold:",
            breaker_prefix=f"{prefix}breaker:",
            timeout=timeout,
        )
        limiter._url = url
        return limiter

    def shared_breakers(self) -> RedisBreakers:
        """The circuit breakers shared on this limiter's Redis (keys under its ``breaker_prefix``)."""
        from toolbridge.resilience._shared_breaker import RedisBreakers

        return RedisBreakers(self._redis, prefix=self._breaker_prefix, timeout=self._timeout)

    def shared_outliers(self) -> RedisOutliers:
        """The outlier detection shared on this limiter's Redis (keys under its ``breaker_prefix``)."""
        from toolbridge.resilience._shared_outlier import RedisOutliers

        return RedisOutliers(self._redis, prefix=self._breaker_prefix, timeout=self._timeout)

    async def __aenter__(self) -> RedisLimiter:
        if self._url is not None:
            await self._check()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._url is not None:
            await self._redis.aclose()

    async def _check(self) -> None:
        """Fail at start, with one line saying why, when Redis does not answer (or refuses us)."""
        where = redacted_redis_url(self._url or "")
        try:
            with anyio.fail_after(_OPEN_TIMEOUT):
                await self._redis.ping()
        except (TimeoutError, OSError, _redis_error()) as exc:
            await self._redis.aclose()
            why = str(exc).splitlines()[0] if str(exc) else f"no answer within {_OPEN_TIMEOUT:g} s"
            raise StorageError(
                f"cannot reach Redis at {where}: {type(exc).__name__}: {why}",
                hint="start Redis or correct server.redis (--redis, TOOLBRIDGE_REDIS); once started, "
                "toolbridge refuses rate-limited calls while Redis is down (503 storage_error) and "
                "recovers by itself",
            ) from exc

    async def _run(self, key: str, limit: Limit, max_wait: float, commit: bool) -> float:
        try:
            with anyio.fail_after(self._timeout):
                raw = await self._script(
                    keys=[self._prefix + key],
                    args=[limit.interval, limit.tolerance, max_wait, int(commit)],
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

    async def hold(self, key: str, seconds: float) -> None:
        milliseconds = math.ceil(seconds * 1000)
        if milliseconds <= 0:
            return
        try:
            with anyio.fail_after(self._timeout):
                await self._hold_script(keys=[self._hold_prefix + key], args=[milliseconds])
        except (TimeoutError, OSError, _redis_error()) as exc:
            name = type(exc).__name__
            logger.warning("could not share the hold of %s (%s); this process keeps it", key, name)

    async def held(self, key: str) -> float:
        try:
            with anyio.fail_after(self._timeout):
                left = int(await self._redis.pttl(self._hold_prefix + key))
        except (TimeoutError, OSError, _redis_error()) as exc:
            logger.warning("could not read the shared hold of %s (%s)", key, type(exc).__name__)
            return 0.0
        return max(left, 0) / 1000


_OPEN_TIMEOUT = 5.0
"""Seconds to connect to Redis and hear its answer at start."""


def redacted_redis_url(url: str) -> str:
    """``url`` with the password masked (``redis://:***@host:6379/0``), for errors and banners."""
    masked = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", masked)
