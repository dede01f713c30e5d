"""The one outcome classifier: what to do after an attempt failed.

| failure | idempotent call | non-idempotent write | counts against the breaker |
|---|---|---|---|
| transport error, nothing sent (refused, DNS, pool timeout) | retry | retry | yes |
| transport error after sending (reset, read timeout, attempt timeout) | retry | fail: outcome unknown | yes |
| 408, 425, 429, 503 (not processed) | retry, after Retry-After | retry, after Retry-After | 503 only |
| 500, 502, 504 | retry | fail | yes |
| 401 | refresh credentials once, then retry | same | no |
| any other status (400, 403, 404, 409, 422 …) | fail | fail | no |
| caller errors, tool errors, credentials errors | fail | fail | no |
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from toolbridge.errors import ToolbridgeError, UpstreamStatusError, UpstreamUnavailable
from toolbridge.resilience._policy import NOT_PROCESSED_STATUSES, RetryPolicy

__all__ = ["Action", "Decision", "classify"]


class Action(enum.Enum):
    RETRY = "retry"
    REFRESH = "refresh"
    FAIL = "fail"
    UNKNOWN = "unknown"
    """Fail, telling the caller the write may have happened."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    failure: bool
    """Whether the attempt counts as an upstream failure (breaker, retry throttling)."""
    wait: float | None = None
    """Seconds the upstream asked us to wait (Retry-After), if it said."""


_FAIL = Decision(Action.FAIL, failure=False)


def classify(exc: ToolbridgeError, *, idempotent: bool, policy: RetryPolicy) -> Decision:
    if isinstance(exc, UpstreamUnavailable):
        if not exc.sent or idempotent:
            return Decision(Action.RETRY, failure=True)
        return Decision(Action.UNKNOWN, failure=True)
    if isinstance(exc, UpstreamStatusError):
        return _status(exc, idempotent=idempotent, policy=policy)
    return _FAIL


def _status(exc: UpstreamStatusError, *, idempotent: bool, policy: RetryPolicy) -> Decision:
    status = exc.upstream_status
    failure = status >= 500
    if status == 401:
        return Decision(Action.REFRESH, failure=False)
    if status not in policy.retry_statuses:
        return Decision(Action.FAIL, failure=failure)
    if idempotent or status in NOT_PROCESSED_STATUSES:
        return Decision(Action.RETRY, failure=failure, wait=exc.retry_after)
    return Decision(Action.FAIL, failure=failure)
