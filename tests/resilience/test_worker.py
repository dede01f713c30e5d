"""The outbox worker, safe by construction: it finds the principal on every backend, reschedules what is
transient, fails for good only what can never succeed (with an event), and never applies an item twice."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import anyio
import pytest

from tests.resilience.conftest import FakeTime
from toolbridge import Hub, Principal
from toolbridge.connectors import Invocation
from toolbridge.errors import UpstreamUnavailable
from toolbridge.resilience import Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.storage import Database
from toolbridge.worker import OutboxWorker

pytestmark = pytest.mark.anyio
QUEUE = ResiliencePolicy(retry=RetryPolicy(max_attempts=1, base_delay=0.01), on_exhausted="queue")


def queue_hub(database_url: str, fake_time: FakeTime, **hub_kwargs: Any) -> tuple[Hub, dict[str, int]]:
    """A hub whose 'svc.write' applies one effect per key (Stripe-style) and fails while ``down`` is set."""
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(1))
    hub = Hub(database=Database(database_url), resilience=resilience, **hub_kwargs)
    effects: dict[str, int] = {}
    state = {"down": 1}

    @hub.tool(connector="svc")
    async def write(op: str, invocation: Invocation) -> str:
        if state["down"]:
            state["down"] -= 1
            raise UpstreamUnavailable("refused", sent=False, tool="svc.write")
        key = invocation.idempotency_key or op
        effects[key] = effects.get(key, 0) + 1
        return op

    resilience.configure("svc", QUEUE)
    return hub, effects


async def due_now(hub: Hub) -> None:
    for item in await hub.outbox.items():
        await hub.outbox._update(item, next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


async def test_an_agents_queued_write_is_applied_on_every_backend(database_url: str, fake_time: FakeTime) -> None:
    """Regression: on PostgreSQL the principal lookup grouped by a json column and every item failed."""
    hub, effects = queue_hub(database_url, fake_time, agents={"bot": ["svc.*"]})
    async with hub:
        await hub.agents.create("bot")
        bot = await hub.agents.principal_for("agent:bot")
        queued = await hub.call(bot, "svc.write", {"op": "a"}, idempotency_key="k-1")
        assert queued.queued
        await due_now(hub)
        assert await OutboxWorker(hub).run_once() == 1
        (item,) = await hub.outbox.items()
    assert item.state == "done", item.last_error
    assert effects == {"k-1": 1}
