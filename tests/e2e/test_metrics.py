"""`GET /v1/metrics` of a running `toolbridge serve`: Prometheus's text format, read back by Prometheus's own
parser, counting exactly the calls made (by tool, outcome and error code) and showing each connector's
breaker; only an operator may read it."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._patience import patience
from tests.e2e.test_replicas_redis import DOCUMENT
from tests.e2e.test_serve import TOOLBRIDGE, serving
from toolbridge.testing import Reply, running_upstream

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels (parsed by prometheus_client)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_count_the_calls_by_outcome_for_operators_only(tmp_path: Path) -> None:
    async with running_upstream() as upstream:
        (tmp_path / "counted.json").write_text(json.dumps(DOCUMENT))
        config = tmp_path / "toolbridge.yaml"
        config.write_text(
            json.dumps(
                {
                    "server": {"database": f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"},
                    "connectors": {
                        "counted": {
                            "kind": "openapi",
                            "spec": "counted.json",
                            "base_url": upstream.url,
                            "allow_hosts": [f"127.0.0.1:{upstream.port}"],
                            "resilience": {"retry": {"max_attempts": 1}},
                        }
                    },
                    "agents": {"assistant": {"scopes": ["counted.*:read"]}, "ops": {"scopes": ["*"]}},
                }
            )
        )
        with anyio.fail_after(patience(120)):
            out = await anyio.run_process([*TOOLBRIDGE, "agents", "create", "ops", "-c", str(config)])
        ops = next(word for word in out.stdout.decode().split() if word.startswith("tb_"))
        upstream.then(
            Reply(200, body={"n": 1}), Reply(404, body={"error": "gone"}), Reply(200, body={"n": 2})
        )
        with serving(config, tmp_path) as served:
            agent = {"Authorization": f"Bearer {served.key}"}
            async with httpx2.AsyncClient(
                base_url=served.base, trust_env=False, timeout=patience(30)
            ) as http:
                codes = []
                for _ in range(3):
                    call = await http.post(
                        "/v1/tools/counted.get_thing/call", json={"arguments": {}}, headers=agent
                    )
                    codes.append(call.status_code)
                missing = await http.post(
                    "/v1/tools/counted.nothing/call", json={"arguments": {}}, headers=agent
                )
                assert codes == [200, 404, 200] and missing.status_code == 404, codes

                refused = await http.get("/v1/metrics", headers=agent)
                assert refused.status_code == 403 and "operator" in refused.json()["detail"], refused.text
                assert "'*'" in refused.json()["hint"]
                assert (await http.get("/v1/metrics")).status_code == 401

                scraped = await http.get("/v1/metrics", headers={"Authorization": f"Bearer {ops}"})
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    samples = _samples(scraped.text)

    def calls(tool: str, outcome: str, code: str = "") -> float:
        labels = (("code", code), ("connector", tool.partition(".")[0]), ("outcome", outcome), ("tool", tool))
        return samples.get(("toolbridge_calls_total", labels), 0.0)

    assert calls("counted.get_thing", "ok") == 2
    assert calls("counted.get_thing", "error", "upstream_status") == 1
    assert calls("(unknown)", "error", "tool_not_found") == 1  # a series per typo would be unbounded
    by_outcome = (("connector", "counted"), ("outcome", "ok"))
    assert samples[("toolbridge_call_duration_seconds_count", by_outcome)] == 2
    assert (
        samples[("toolbridge_call_duration_seconds_bucket", (*by_outcome[:1], ("le", "+Inf"), by_outcome[1]))]
        == 2
    )
    assert samples[("toolbridge_breaker_state", (("connector", "counted"),))] == 0  # closed
    assert samples[("toolbridge_upstream_attempts_total", (("connector", "counted"),))] == 3
    assert samples[("toolbridge_tools", ())] >= 1
    assert len(upstream.requests) == 3
