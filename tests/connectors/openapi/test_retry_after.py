"""An upstream's Retry-After reaches the agent over real HTTP: the REST answer's header, its problem
document, and a hint that says how long to wait (the hint is what an agent reads first)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from tests._patience import patience
from tests.e2e.test_serve import serving
from toolbridge.testing import Reply, running_upstream

pytestmark = pytest.mark.anyio
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "operationId": "createOrder",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"201": {"description": "created"}},
            }
        }
    },
}


@pytest.mark.e2e
@pytest.mark.parametrize(("status", "code"), [(429, 429), (503, 502)])
async def test_the_upstreams_retry_after_reaches_the_agent(tmp_path: Path, status: int, code: int) -> None:
    """A ``toolbridge serve`` process, a connector without retries: the agent hears the upstream's wait."""
    async with running_upstream() as upstream:
        upstream.then(Reply(status, headers={"Retry-After": "2"}))
        (tmp_path / "shop.json").write_text(json.dumps(DOCUMENT))
        (tmp_path / "toolbridge.yaml").write_text(
            "connectors:\n  shop:\n    kind: openapi\n    spec: shop.json\n"
            f"    base_url: {upstream.url}\n    allow_hosts: ['127.0.0.1:{upstream.port}']\n"
            "    resilience: {retry: {max_attempts: 1}}\n"
            "agents:\n  assistant: {scopes: ['*']}\n"
        )
        with serving(tmp_path / "toolbridge.yaml", tmp_path) as server:
            async with httpx2.AsyncClient(trust_env=False, timeout=patience(30)) as http:
                answer = await http.post(
                    f"{server.base}/v1/tools/shop.create_order/call",
                    json={"arguments": {"body": {}}},
                    headers={"Authorization": f"Bearer {server.key}"},
                )
    assert answer.status_code == code and answer.headers["Retry-After"] == "2", answer.text
    problem = answer.json()
    assert problem["upstream_status"] == status and problem["retry_after"] == 2
    assert "wait 2 s" in problem["hint"], problem["hint"]
    assert len(upstream.requests) == 1
