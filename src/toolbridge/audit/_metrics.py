"""Prometheus metrics of what the audit log records: every action, counted as it is recorded.

Every action an agent takes leaves one audit row, so the rows are the metrics' source: calls per tool,
outcome and error code, and their durations per connector. Counting costs a dict update per row (no
lock, no library on the call path); ``prometheus_client`` is imported only to render a scrape, which
also reads the connectors' live state (breakers, attempts, holds) passed in by the caller.

The numbers are this process's since it started, as Prometheus expects of each replica it scrapes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from toolbridge.audit._chain import AuditEntry

if TYPE_CHECKING:
    from toolbridge.resilience import ConnectorHealth

__all__ = ["CONTENT_TYPE", "CallMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: Prometheus's default buckets, and 30 and 60 (the default call deadline)."""

_BREAKER = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
MAX_TOOLS = 20_000
"""Distinct tool names kept as labels; the rest are counted as ``(other)`` (a series per name costs
Prometheus memory; a catalog has a few thousand)."""
UNKNOWN = "(unknown)"
"""The tool and connector label of a call to a tool that does not exist: the name is the agent's, and
labelling each would give every typo a series of its own."""


class CallMetrics:
    """Counts of audit entries, and a histogram of their durations per connector and outcome."""

    def __init__(self) -> None:
        self._calls: Counter[tuple[str, str, str, str]] = Counter()
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._tools: set[str] = set()

    def observe(self, entry: AuditEntry) -> None:
        """Count one recorded action (called by the audit log for each entry it takes)."""
        connector, tool = _connector(entry.tool), entry.tool
        if entry.error_code == "tool_not_found":
            connector = tool = UNKNOWN
        elif tool not in self._tools:
            if len(self._tools) >= MAX_TOOLS:
                tool = "(other)"
            else:
                self._tools.add(tool)
        self._calls[(connector, tool, entry.outcome, entry.error_code or "")] += 1
        key = (connector, entry.outcome)
        counts = self._buckets.get(key)
        if counts is None:
            counts = self._buckets[key] = [0] * (len(BUCKETS) + 1)
        seconds = max(entry.duration_ms, 0.0) / 1000
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sums[key] = self._sums.get(key, 0.0) + seconds

    def calls(self) -> Mapping[tuple[str, str, str, str], int]:
        """(connector, tool, outcome, error code) → how many, for tests and reports."""
        return dict(self._calls)

    def render(self, health: Iterable[ConnectorHealth] = (), *, tools: int | None = None) -> bytes:
        """The Prometheus text format of the counts, of ``health`` (each connector's live state) and of
        the catalog's size."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, list(health), tools))
        return generate_latest(registry)


class _Collector:
    def __init__(self, metrics: CallMetrics, health: list[ConnectorHealth], tools: int | None) -> None:
        self._metrics, self._health, self._tools = metrics, health, tools

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        m = self._metrics
        calls = CounterMetricFamily(
            "toolbridge_calls",
            "Actions recorded in the audit log (tool calls, refusals, authentications), by outcome",
            labels=["connector", "tool", "outcome", "code"],
        )
        for (connector, tool, outcome, code), count in sorted(m._calls.items()):
            calls.add_metric([connector, tool, outcome, code], count)
        yield calls
        duration = HistogramMetricFamily(
            "toolbridge_call_duration_seconds",
            "Time from the call's arrival to its answer, per connector and outcome",
            labels=["connector", "outcome"],
        )
        for key, counts in sorted(m._buckets.items()):
            cumulative, total = [], 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += count
                cumulative.append((_bound(bound), total))
            duration.add_metric(list(key), cumulative, m._sums[key])
        yield duration
        yield from self._live()

    def _live(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, kind, text, value in _PER_CONNECTOR:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, text, labels=["connector"]
            )
            for health in self._health:
                family.add_metric([health.connector], value(health))
            yield family
        if self._tools is not None:
            yield GaugeMetricFamily("toolbridge_tools", "Tools in the catalog", value=self._tools)


_PER_CONNECTOR: tuple[tuple[str, str, str, Callable[[ConnectorHealth], float]], ...] = (
    (
        "toolbridge_breaker_state",
        "gauge",
        "Circuit breaker per connector: 0 closed, 1 half-open, 2 open (the shared one when replicas share "
        "Redis)",
        lambda h: _BREAKER.get(h.breaker, 0.0),
    ),
    (
        "toolbridge_breaker_failure_rate",
        "gauge",
        "Failed share of the breaker's window",
        lambda h: h.failure_rate,
    ),
    (
        "toolbridge_upstream_attempts",
        "counter",
        "Attempts sent to the connector's upstream (retries included)",
        lambda h: h.attempts,
    ),
    ("toolbridge_calls_in_flight", "gauge", "Calls in progress per connector", lambda h: h.in_flight),
    (
        "toolbridge_upstream_hold_seconds",
        "gauge",
        "Seconds new calls still wait because the upstream asked for a pause (Retry-After)",
        lambda h: h.held_for,
    ),
    (
        "toolbridge_ejected_connections",
        "gauge",
        "Connections of the connector ejected for failing again and again (outlier ejection)",
        lambda h: len(h.ejected),
    ),
)
"""Each connector's live state (:class:`ConnectorHealth`): name, kind, help, value."""


def _connector(action: str) -> str:
    """A tool's connector (``slack`` of ``slack.chat_post_message``); ``toolbridge`` for the hub's own
    actions, written in parentheses (``(authenticate)``)."""
    if action.startswith("(") or "." not in action:
        return "toolbridge"
    return action.partition(".")[0]


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)
