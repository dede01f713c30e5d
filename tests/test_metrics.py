"""The audit log's counts (rendered at ``GET /v1/metrics``; the end-to-end test is tests/e2e/test_metrics.py):
label values an agent chooses cannot grow the series without bound."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from toolbridge.audit import CallMetrics, audit_entry
from toolbridge.audit._metrics import MAX_TOOLS
from toolbridge.errors import ToolNotFound


def _series(metrics: CallMetrics) -> set[tuple[tuple[str, str], ...]]:
    text = metrics.render().decode()
    return {
        tuple(sorted(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "toolbridge_calls_total"
    }


def test_calls_to_tools_that_do_not_exist_share_one_series() -> None:
    metrics = CallMetrics()
    for name in ("slack.chat_post", "nope.x", "a" * 128):
        metrics.observe(audit_entry("r", "agent:a", name, "", error=ToolNotFound(f"no tool {name!r}")))
    assert metrics.calls() == {("(unknown)", "(unknown)", "error", "tool_not_found"): 3}
    assert len(_series(metrics)) == 1


def test_distinct_tool_labels_are_capped() -> None:
    metrics = CallMetrics()
    for i in range(MAX_TOOLS + 50):
        metrics.observe(audit_entry("r", "agent:a", f"c.tool_{i}", "", duration_ms=3.0))
    calls = metrics.calls()
    assert len(calls) == MAX_TOOLS + 1 and calls[("c", "(other)", "ok", "")] == 50
    assert calls[("c", "c.tool_0", "ok", "")] == 1  # names seen before the cap keep their series


def test_the_hubs_own_actions_are_under_the_toolbridge_connector() -> None:
    metrics = CallMetrics()
    metrics.observe(audit_entry("r", "operator", "(credentials.rotate)", ""))
    assert metrics.calls() == {("toolbridge", "(credentials.rotate)", "ok", ""): 1}
