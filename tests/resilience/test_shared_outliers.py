"""Replicas sharing Redis share outlier ejection (RELIABILITY.md R12): one run of consecutive failures per
connection, counted across replicas; the replica whose failure completes it ejects the connection for all.
Without an answer from Redis each process's detector decides."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest

from tests._patience import patience
from tests.conftest import require_service
from tests.resilience.conftest import FakeTime
from tests.resilience.test_ratelimit import _free_port, _limiter
from toolbridge.connectors._http import send
from toolbridge.errors import CircuitOpen, UpstreamStatusError
from toolbridge.resilience import Attempt, Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.resilience._shared_outlier import RedisOutliers
from toolbridge.testing import Reply, running_upstream

pytestmark = pytest.mark.anyio
POLICY = ResiliencePolicy(retry=RetryPolicy(max_attempts=1))
REDIS_DB = 13


@asynccontextmanager
async def _redis() -> AsyncIterator[tuple[Any, str]]:
    """A client of the test Redis database and a key prefix of this test's own (its keys deleted after)."""
    import redis.asyncio as redis_asyncio

    require_service("Redis", "127.0.0.1", 6379)
    client = redis_asyncio.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    prefix = f"test:{secrets.token_hex(6)}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def caller(resilience: Resilience, client: httpx2.AsyncClient, url: str) -> Callable[[str], Awaitable[Any]]:
    """One GET of ``url`` as the connection ``connection`` of connector 'gh', through ``resilience``."""

    async def call(connection: str) -> Any:
        attempt = Attempt("gh", "gh.me", idempotent=True, deadline=None, connection=connection)
        response = await resilience.run(attempt, lambda: send(client, client.build_request("GET", url)))
        return response.json()

    return call


@pytest.mark.redis
async def test_replicas_count_a_connections_failures_together_and_eject_it_for_all(
    fake_time: FakeTime,
) -> None:
    async with AsyncExitStack() as stack:
        redis, prefix = await stack.enter_async_context(_redis())
        broken = await stack.enter_async_context(running_upstream())
        broken.then(*[Reply(500)] * 20)
        http = await stack.enter_async_context(httpx2.AsyncClient(trust_env=False, timeout=patience(5.0)))
        replicas = []
        for _ in range(2):
            resilience = Resilience(
                clock=fake_time.clock, sleep=fake_time.sleep, limiter=_limiter(redis, prefix)
            )
            resilience.configure("gh", POLICY)
            replicas.append(caller(await stack.enter_async_context(resilience), http, f"{broken.url}/me"))
        a, b = replicas
        for call in (a, b, a, b, a):  # five in a row, three seen by one replica and two by the other
            with pytest.raises(UpstreamStatusError):
                await call("conn_alice")
        for call in (a, b):
            with pytest.raises(CircuitOpen, match="connection 'conn_alice' of connector 'gh' is ejected"):
                await call("conn_alice")
    assert len(broken.requests) == 5, "ejected for both replicas after five failures between them"


@pytest.mark.redis
async def test_a_success_on_either_replica_starts_the_count_again(fake_time: FakeTime) -> None:
    async with AsyncExitStack() as stack:
        redis, prefix = await stack.enter_async_context(_redis())
        flaky = await stack.enter_async_context(running_upstream())
        flaky.then(*[Reply(500)] * 3, Reply(200, body={"ok": True}), *[Reply(500)] * 5)
        http = await stack.enter_async_context(httpx2.AsyncClient(trust_env=False, timeout=patience(5.0)))
        replicas = []
        for _ in range(2):
            resilience = Resilience(
                clock=fake_time.clock, sleep=fake_time.sleep, limiter=_limiter(redis, prefix)
            )
            resilience.configure("gh", POLICY)
            call = caller(await stack.enter_async_context(resilience), http, f"{flaky.url}/me")
            replicas.append((resilience, call))
        (_, a), (b_resilience, b) = replicas
        for _ in range(3):
            with pytest.raises(UpstreamStatusError):
                await b("conn_alice")
        assert await a("conn_alice") == {"ok": True}  # b's three failures are no longer in a row
        for _ in range(5):  # alone, b would have ejected it at the second of these
            with pytest.raises(UpstreamStatusError):
                await b("conn_alice")
        with pytest.raises(CircuitOpen) as refused:
            await b("conn_alice")
        assert 20.0 < refused.value.retry_after <= 30.0  # (less the time a busy machine took since)
        (ejected,) = b_resilience.health(["gh"])[0].ejected
        assert ejected.connection == "conn_alice" and ejected.ejections == 1
    assert len(flaky.requests) == 9


@pytest.mark.redis
async def test_without_an_answer_from_redis_the_process_detector_decides(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as redis_asyncio

    dead = redis_asyncio.Redis(host="127.0.0.1", port=_free_port())  # nothing listens
    async with AsyncExitStack() as stack:
        stack.push_async_callback(dead.aclose)
        broken = await stack.enter_async_context(running_upstream())
        broken.then(*[Reply(500)] * 20)
        http = await stack.enter_async_context(httpx2.AsyncClient(trust_env=False, timeout=patience(5.0)))
        resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep)
        resilience.outliers = RedisOutliers(dead, timeout=0.5, retry_after=3600)  # asked once
        resilience.configure("gh", POLICY)
        call = caller(resilience, http, f"{broken.url}/me")
        with caplog.at_level(logging.WARNING, logger="toolbridge.resilience"):
            for _ in range(5):
                with pytest.raises(UpstreamStatusError):
                    await call("conn_alice")
            with pytest.raises(CircuitOpen):
                await call("conn_alice")
    assert len(broken.requests) == 5
    assert "the shared outlier detection of gh did not answer" in caplog.text
    assert caplog.text.count("did not answer") == 1
    assert [e.connection for e in resilience.health(["gh"])[0].ejected] == ["conn_alice"]
