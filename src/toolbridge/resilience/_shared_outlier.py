"""Outlier ejection shared by replicas through Redis: one count of consecutive failures per connection,
one ejection, one cap.

Each process ejecting on its own would let a broken account cost every replica its own
``consecutive_failures`` failures, and the cap (``max_ejection_percent`` of the active connections)
would hold per replica, not for the fleet. Shared, every replica's outcomes of a connection count in one
run, the replica whose failure completes it ejects the connection for all, and the ejected ones and the
active ones are counted across replicas. Each decision is one Lua script on **Redis's clock**.

Keys (under the limiter's breaker prefix): ``<prefix>outlier:<connector>``, a hash of each connection's
consecutive failures (``f:<id>``), ejection count (``n:<id>``) and end of ejection (``u:<id>``, ms);
``…:seen``, a sorted set of the connections by when they were last called; ``…:out``, a sorted set of the
ejected ones by when their ejection ends.

Every decision is bounded by ``timeout``. When Redis does not answer, :meth:`RedisOutliers.admit` and
:meth:`RedisOutliers.record` return None (a warning is logged) and the process's own detector decides;
Redis is asked again ``retry_after`` seconds later.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from toolbridge.resilience._policy import OutlierPolicy
from toolbridge.resilience._shared_breaker import SharedScripts

__all__ = ["OutlierStore", "OutlierVerdict", "RedisOutliers"]

logger = logging.getLogger("toolbridge.resilience")

_KEPT_MS = 86_400_000
"""The keys outlive their last write by a day."""

_NOW = """
local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_ADMIT_LUA = (
    _NOW
    + """
local conn, active_ms = ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], now, conn)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - active_ms)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
local ends = tonumber(redis.call('HGET', KEYS[1], 'u:' .. conn) or '0')
if now < ends then return {1, ends - now, tonumber(redis.call('HGET', KEYS[1], 'n:' .. conn) or '0')} end
return {0, 0, 0}
"""
)
"""ARGV: the connection, active_seconds (ms), the keys' lifetime (ms). Returns ejected (0/1), the ms
left of its ejection and its ejection count."""

_RECORD_LUA = (
    _NOW
    + """
local conn, failure, threshold = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local base_ms, max_ms, percent = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local active_ms, kept = tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('ZADD', KEYS[2], now, conn)
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, kept) end
if failure == 0 then redis.call('HSET', KEYS[1], 'f:' .. conn, 0); return {0, 0, 0} end
local fails = redis.call('HINCRBY', KEYS[1], 'f:' .. conn, 1)
local ends = tonumber(redis.call('HGET', KEYS[1], 'u:' .. conn) or '0')
if fails < threshold or now < ends then return {0, 0, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local active = redis.call('ZCOUNT', KEYS[2], now - active_ms, '+inf')
local cap = math.max(1, math.floor(active * percent / 100))
if redis.call('ZCARD', KEYS[3]) >= cap then return {0, 0, 0} end
local n = tonumber(redis.call('HGET', KEYS[1], 'n:' .. conn) or '0')
if n > 0 then n = math.max(0, n - math.floor((now - ends) / base_ms)) end
n = n + 1
local span = math.min(base_ms * n, max_ms)
redis.call('HSET', KEYS[1], 'f:' .. conn, 0, 'n:' .. conn, n, 'u:' .. conn, now + span)
redis.call('ZADD', KEYS[3], now + span, conn)
return {1, span, n}
"""
)
"""ARGV: the connection, failure (0/1), consecutive_failures, base and max ejection (ms),
max_ejection_percent, active_seconds (ms), the keys' lifetime (ms). Returns ejected-now (0/1), the
ejection's length (ms) and the ejection count."""


@dataclass(frozen=True, slots=True)
class OutlierVerdict:
    """What the shared detector said of one connection."""

    ejected: bool
    """Admit: the connection is ejected (refuse the call). Record: this outcome ejected it."""
    seconds: float
    """How long the ejection lasts from now."""
    ejections: int


@runtime_checkable
class OutlierStore(Protocol):
    """Where the outlier detection of several processes is kept as one."""

    async def admit(self, connector: str, connection: str, policy: OutlierPolicy) -> OutlierVerdict | None:
        """Is the connection ejected? None: the store did not answer (the process decides)."""

    async def record(
        self, connector: str, connection: str, policy: OutlierPolicy, failure: bool
    ) -> OutlierVerdict | None:
        """Count one outcome of the connection. None: the store did not answer."""


class RedisOutliers(SharedScripts):
    """Shared outlier detection in Redis. The client is the caller's (:meth:`RedisLimiter.shared_outliers`
    shares the limiter's)."""

    what = "shared outlier detection"

    def __init__(self, redis: Any, *, prefix: str = "toolbridge:breaker:", **options: Any) -> None:
        super().__init__(redis, prefix=prefix + "outlier:", **options)
        self._admit = redis.register_script(_ADMIT_LUA)
        self._record = redis.register_script(_RECORD_LUA)

    async def admit(self, connector: str, connection: str, policy: OutlierPolicy) -> OutlierVerdict | None:
        args = [connection, _ms(policy.active_seconds), _KEPT_MS]
        return await self._run(self._admit, connector, args)

    async def record(
        self, connector: str, connection: str, policy: OutlierPolicy, failure: bool
    ) -> OutlierVerdict | None:
        args = [
            connection,
            int(failure),
            policy.consecutive_failures,
            _ms(policy.base_ejection_seconds),
            _ms(policy.max_ejection_seconds),
            policy.max_ejection_percent,
            _ms(policy.active_seconds),
            _KEPT_MS,
        ]
        return await self._run(self._record, connector, args)

    async def _run(self, script: Any, connector: str, args: list[Any]) -> OutlierVerdict | None:
        key = self._prefix + connector
        reply = await self._call(script, connector, [key, key + ":seen", key + ":out"], args)
        if reply is None:
            return None
        flag, span_ms, count = reply
        return OutlierVerdict(int(flag) == 1, int(span_ms) / 1000, int(count))


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)
