from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import httpx2
import pytest

from tests._patience import patience
from toolbridge import Hub
from toolbridge.connectors import Invocation
from toolbridge.connectors._http import send
from toolbridge.resilience import RateLimiter, Resilience, ResiliencePolicy
from toolbridge.testing import Upstream, running_upstream


@dataclass
class FakeTime:
    """Real time plus simulated waits: backoff sleeps advance the clock instead of blocking."""

    offset: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return time.monotonic() + self.offset  # the clock asyncio (and so anyio) uses

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with running_upstream() as server:
        yield server


def http_hub(
    upstream_url: str,
    fake_time: FakeTime,
    policy: ResiliencePolicy,
    *,
    seed: int = 7,
    limiter: RateLimiter | None = None,
    **hub_kwargs: object,
) -> tuple[Hub, httpx2.AsyncClient]:
    """A hub whose 'up' connector calls the upstream over real HTTP, as a native-SDK tool would."""
    resilience = Resilience(
        clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(seed), limiter=limiter
    )
    hub = Hub(resilience=resilience, **hub_kwargs)  # type: ignore[arg-type]
    client = httpx2.AsyncClient(base_url=upstream_url, trust_env=False, timeout=patience(5.0))

    @hub.tool(connector="up", read_only=True)
    async def fetch(invocation: Invocation) -> object:
        response = await send(client, client.build_request("GET", "/thing"), hold=invocation.hold)
        return response.json()

    @hub.tool(connector="up")
    async def create(name: str, invocation: Invocation) -> object:
        headers = {"Idempotency-Key": invocation.idempotency_key} if invocation.idempotency_key else {}
        request = client.build_request("POST", "/things", json={"name": name}, headers=headers)
        return (await send(client, request)).json()

    resilience.configure("up", policy)
    return hub, client
