"""Retry budget: retries stop multiplying load during an outage.

Two rules, both must allow a retry:
- **Envoy**: retries in flight ≤ max(``budget_min``, ``budget_ratio`` × active calls);
- **gRPC throttling**: a token count starts at ``max_tokens``; each failure takes one, each success
  gives back ``token_ratio``; retries are allowed only while tokens > max_tokens / 2.
"""

from __future__ import annotations

from toolbridge.resilience._policy import RetryPolicy

__all__ = ["RetryBudget"]


class RetryBudget:
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self.tokens = policy.throttle_max_tokens
        self.active = 0
        self.retrying = 0

    def can_retry(self) -> bool:
        p = self._policy
        if self.tokens <= p.throttle_max_tokens / 2:
            return False
        return self.retrying < max(p.budget_min, p.budget_ratio * self.active)

    def on_failure(self) -> None:
        self.tokens = max(0.0, self.tokens - 1)

    def on_success(self) -> None:
        self.tokens = min(self._policy.throttle_max_tokens, self.tokens + self._policy.throttle_token_ratio)
