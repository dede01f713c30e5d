"""Failure handling: one classifier, bounded retries, circuit breakers, rate limits, bulkheads."""

from toolbridge.resilience._breaker import BreakerState, CircuitBreaker, Transition
from toolbridge.resilience._budget import RetryBudget
from toolbridge.resilience._classify import Action, Decision, classify
from toolbridge.resilience._executor import Attempt, ConnectorHealth, Resilience
from toolbridge.resilience._headers import RateLimitInfo, parse_ratelimit, parse_retry_after
from toolbridge.resilience._outlier import Ejection, OutlierDetector
from toolbridge.resilience._policy import (
    BreakerPolicy,
    BulkheadPolicy,
    OutlierPolicy,
    ResiliencePolicy,
    RetryPolicy,
)
from toolbridge.resilience._ratelimit import (
    HoldStore,
    Limit,
    MemoryLimiter,
    RateLimiter,
    RedisLimiter,
    parse_rate,
)
from toolbridge.resilience._shared_breaker import BreakerStore, RedisBreakers, SharedVerdict
from toolbridge.resilience._shared_outlier import OutlierStore, OutlierVerdict, RedisOutliers

__all__ = [
    "Action",
    "Attempt",
    "BreakerPolicy",
    "BreakerState",
    "BreakerStore",
    "BulkheadPolicy",
    "CircuitBreaker",
    "ConnectorHealth",
    "Decision",
    "Ejection",
    "HoldStore",
    "Limit",
    "MemoryLimiter",
    "OutlierDetector",
    "OutlierPolicy",
    "OutlierStore",
    "OutlierVerdict",
    "RateLimitInfo",
    "RateLimiter",
    "RedisBreakers",
    "RedisLimiter",
    "RedisOutliers",
    "Resilience",
    "ResiliencePolicy",
    "RetryBudget",
    "RetryPolicy",
    "SharedVerdict",
    "Transition",
    "classify",
    "parse_rate",
    "parse_ratelimit",
    "parse_retry_after",
]
