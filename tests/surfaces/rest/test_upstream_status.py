"""REST status codes that tell the truth: the upstream's 4xx as they are, 502 only for a broken upstream,
202 for a queued call and for every replay of it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from tests.connectors.openapi.conftest import ingested
from tests.resilience.conftest import FakeTime
from tests.resilience.test_keys import document

from toolbridge import Hub
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.resilience import Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.surfaces.app import create_app
from toolbridge.testing import Reply, Upstream, running_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as server:
        yield server


@asynccontextmanager
async def rest(
    upstream: Upstream, fake_time: FakeTime, policy: ResiliencePolicy
) -> AsyncIterator[httpx2.AsyncClient]:
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(1))
    hub = Hub(agents={"w": ["*"]}, resilience=resilience)
    hub.add_connector(OpenAPIConnector("api", ingested(document()), base_url=upstream.url), policy=policy)
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("w")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {key}"}
        ) as http:
            yield http


async def call(http: httpx2.AsyncClient, key: str | None = None) -> httpx2.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await http.post(
        "/v1/tools/api.create_thing/call", json={"arguments": {"name": "a"}}, headers=headers
    )


@pytest.mark.parametrize("status", [400, 404, 409, 410, 422, 429])
async def test_an_upstream_4xx_is_answered_with_its_own_status(
    upstream: Upstream, fake_time: FakeTime, status: int
) -> None:
    """Regression: every upstream 4xx reached REST callers as 502."""
    upstream.then(Reply(status, headers={"retry-after": "7"}, body={"error": "nope"}))
    async with rest(upstream, fake_time, ResiliencePolicy(retry=RetryPolicy(max_attempts=1))) as http:
        answer = await call(http)
    doc = answer.json()
    assert answer.status_code == status and doc["status"] == status
    assert doc["code"] == "upstream_status" and doc["upstream_status"] == status
    assert doc["upstream_body"] == '{"error": "nope"}'
    if status == 429:
        assert answer.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("reply", "status"), [(Reply(500), 502), (Reply(503), 502), (Reply(reset=True), 504)]
)
async def test_a_broken_upstream_is_a_gateway_error(
    upstream: Upstream, fake_time: FakeTime, reply: Reply, status: int
) -> None:
    upstream.then(reply)
    async with rest(upstream, fake_time, ResiliencePolicy(retry=RetryPolicy(max_attempts=1))) as http:
        answer = await call(http)
    assert answer.status_code == status  # 504: a write whose answer was lost may have happened


async def test_a_queued_call_and_its_replays_answer_202(upstream: Upstream, fake_time: FakeTime) -> None:
    """Regression: a replay of a queued call answered 200."""
    upstream.then(Reply(503), Reply(503))
    queue = ResiliencePolicy(retry=RetryPolicy(max_attempts=2, base_delay=0.01), on_exhausted="queue")
    async with rest(upstream, fake_time, queue) as http:
        first, replay = await call(http, "op-1"), await call(http, "op-1")
    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == first.headers["location"]
    assert len(upstream.requests) == 2
