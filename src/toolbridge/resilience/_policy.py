"""Resilience policies: plain frozen values, built from settings at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "BreakerPolicy",
    "BulkheadPolicy",
    "OutlierPolicy",
    "RETRYABLE_STATUSES",
    "ResiliencePolicy",
    "RetryPolicy",
]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses retried by policy (RFC 9110 and the AWS/gRPC defaults)."""
NOT_PROCESSED_STATUSES = frozenset({408, 425, 429, 503})
"""Statuses that say the upstream did not act on the request, so even a write may be retried."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Defaults chosen so idempotent calls ride out 30 % transient faults (≥ 99 % succeed within the
    60 s call deadline: 5 attempts — gRPC's cap — each bounded by 20 s) while an outage stops retries:
    the throttle trips once more than half of recent attempts fail (100 tokens, −1 per failure, +1 per
    success), and retries are never all of a connector's traffic beyond ``budget_min``. Envoy's stricter
    20 % budget (``budget_ratio: 0.2``) starves retries at such fault rates: once the calls that
    succeeded have left, the ones still retrying are more than a fifth of those in flight."""

    max_attempts: int = 5
    base_delay: float = 0.5
    """First backoff ceiling in seconds; doubles per attempt (full jitter picks in [0, ceiling))."""
    max_delay: float = 10.0
    attempt_timeout: float | None = 20.0
    """Seconds one attempt may take; the call deadline bounds all of them together."""
    max_retry_after: float = 120.0
    """A Retry-After longer than this is not waited for: the call fails with the hint instead."""
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES
    budget_ratio: float = 1.0
    """Retries in flight may be at most this share of active calls (at least ``budget_min``)."""
    budget_min: int = 3
    throttle_max_tokens: float = 100.0
    """gRPC-style throttling: each failed attempt takes a token, each success gives ``throttle_token_ratio``
    back; retries stop while tokens ≤ half of this."""
    throttle_token_ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    enabled: bool = True
    failure_rate: float = 0.5
    window: int = 100
    minimum_calls: int = 20
    open_seconds: float = 60.0
    half_open_calls: int = 10


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """Outlier ejection of a connector's connections (RELIABILITY.md R12; Envoy's defaults): one that
    fails ``consecutive_failures`` times in a row (5xx, no answer) is refused for ``base_ejection_seconds``
    × its ejection count (at most ``max_ejection_seconds``); at most ``max_ejection_percent`` of the
    connections seen within ``active_seconds`` are ejected at once (one always may be)."""

    enabled: bool = True
    consecutive_failures: int = 5
    base_ejection_seconds: float = 30.0
    max_ejection_seconds: float = 300.0
    max_ejection_percent: float = 10.0
    active_seconds: float = 600.0
    """A connection called within this many seconds counts as active (for the share ejected at once)."""


@dataclass(frozen=True, slots=True)
class BulkheadPolicy:
    max_concurrent: int = 64
    max_wait: float = 5.0
    """Seconds a call may queue for a free slot before failing with 503."""


@dataclass(frozen=True, slots=True)
class ResiliencePolicy:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    bulkhead: BulkheadPolicy = field(default_factory=BulkheadPolicy)
    outlier: OutlierPolicy = field(default_factory=OutlierPolicy)
    rate: str | None = None
    """Outbound rate limit such as ``5000/hour`` or ``10/second``; None for none."""
    burst: int | None = None
    max_rate_wait: float = 10.0
    """Seconds toolbridge waits for the outbound limit before failing with a retry-after hint."""
    on_exhausted: Literal["fail", "queue"] = "fail"
    """``queue``: a write that failed transiently goes to the durable outbox for a worker to retry."""
