"""Tools that wait for news — ``events.wait`` (up to 50 s) and a workspace's ``changes`` (up to 30 s) — are
bounded by the call deadline only: the default policy cut each attempt at 20 s and retried it as a timeout
until the 60 s deadline, so every wait over 20 s was a 504, and the timeouts opened the breaker (found by
an outside newcomer probe running docs/events.md's ``wait=30``)."""

from __future__ import annotations

from toolbridge import Hub
from toolbridge.settings import parse_settings

CONFIG = """
events: {}
connectors:
  shared:
    kind: workspace
    workspace: team
  tuned:
    kind: workspace
    workspace: other
    resilience: {retry: {attempt_timeout: 5}}
"""


def test_waiting_tools_have_no_attempt_timeout_and_the_events_tools_no_breaker() -> None:
    hub = Hub.from_settings(parse_settings(CONFIG))
    events = hub.resilience.state("events").policy
    assert events.retry.attempt_timeout is None and events.retry.max_attempts == 1
    assert events.breaker.enabled is False
    assert hub.resilience.state("shared").policy.retry.attempt_timeout is None
    assert hub.resilience.state("tuned").policy.retry.attempt_timeout == 5  # what the operator set stands
    assert "events.wait" in hub.catalog and "shared.changes" in hub.catalog
