"""RELIABILITY.md A: retries, backoff, Retry-After, deadlines — against a real local upstream."""

from __future__ import annotations

import datetime as dt

import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Limits, Principal
from toolbridge.errors import (
    OutcomeUnknown,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.resilience import ResiliencePolicy, RetryPolicy, parse_retry_after
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
LOCAL = Principal.local()


def policy(**retry: object) -> ResiliencePolicy:
    return ResiliencePolicy(retry=RetryPolicy(**{"base_delay": 0.1, "max_delay": 5.0, **retry}))  # type: ignore[arg-type]


async def test_r1_get_retried_until_success_with_full_jitter(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(503), Reply(503), Reply(503), Reply(200, body={"n": 1}))
    hub, client = http_hub(upstream.url, fake_time, policy(max_attempts=4))
    async with client, hub:
        result = await hub.call(LOCAL, "up.fetch")
    assert result.value == {"n": 1} and len(upstream.requests) == 4
    assert len(fake_time.sleeps) == 3
    for n, delay in enumerate(fake_time.sleeps):
        assert 0 <= delay < min(5.0, 0.1 * 2**n)


async def test_r1_seeded_workers_do_not_sleep_in_lockstep(upstream: Upstream) -> None:
    sequences = []
    for seed in (1, 2):
        upstream.then(Reply(503), Reply(503), Reply(200))
        time = FakeTime()
        hub, client = http_hub(upstream.url, time, policy(), seed=seed)
        async with client, hub:
            await hub.call(LOCAL, "up.fetch")
        sequences.append(time.sleeps)
    assert sequences[0] != sequences[1]


async def test_r2_post_without_key_is_not_retried_after_send(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(reset=True))
    hub, client = http_hub(upstream.url, fake_time, policy())
    async with client, hub:
        with pytest.raises(OutcomeUnknown, match="may or may not have taken effect") as info:
            await hub.call(LOCAL, "up.create", {"name": "a"})
    assert "idempotency key" in str(info.value.hint)
    assert len(upstream.requests) == 1


async def test_r2_read_timeout_after_send_is_outcome_unknown(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(hang=patience(30)))  # answers after the attempt's timeout, which ends it
    # the request must reach the upstream within the attempt's timeout, on a busy machine too
    hub, client = http_hub(upstream.url, fake_time, policy(attempt_timeout=patience(1.0)))
    async with client, hub:
        with pytest.raises(OutcomeUnknown):
            await hub.call(LOCAL, "up.create", {"name": "a"})
    assert len(upstream.requests) == 1


async def test_r3_post_with_key_retried_with_same_key_one_effect(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(reset=True), Reply(200, body={"created": True}))
    hub, client = http_hub(upstream.url, fake_time, policy())
    async with client, hub:
        result = await hub.call(LOCAL, "up.create", {"name": "a"}, idempotency_key="k-1")
    assert result.value == {"created": True}
    assert len(upstream.requests) == 2
    assert {r[2]["idempotency-key"] for r in upstream.requests} == {"k-1"}
    assert upstream.effect_count == 1


async def test_r4_connection_refused_post_is_retried(fake_time: FakeTime) -> None:
    hub, client = http_hub("http://127.0.0.1:9", fake_time, policy(max_attempts=3))  # discard port: refused
    async with client, hub:
        with pytest.raises(UpstreamUnavailable, match="cannot reach") as info:
            await hub.call(LOCAL, "up.create", {"name": "a"})
    assert info.value.sent is False
    assert hub.resilience.state("up").attempts == 3


@pytest.mark.parametrize(
    "value",
    ["7", "Sun, 29 Nov 2026 12:00:07 GMT", "Sunday, 29-Nov-26 12:00:07 GMT", "Sun Nov 29 12:00:07 2026"],
)
def test_r5_retry_after_forms(value: str) -> None:
    now = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after(value, now=lambda: now) == 7.0


async def test_r5_retry_after_is_waited_plus_jitter(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(429, headers={"Retry-After": "7"}), Reply(200))
    hub, client = http_hub(upstream.url, fake_time, policy())
    async with client, hub:
        await hub.call(LOCAL, "up.create", {"name": "a"})  # 429 means "not processed": safe for a write
    assert len(upstream.requests) == 2
    assert 7.0 <= fake_time.sleeps[0] < 7.1


@pytest.mark.parametrize("value", ["-5", "1.5", "abc", ""])
def test_r6_invalid_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


def test_r6_past_date_means_now() -> None:
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT") == 0.0


async def test_r6_huge_retry_after_fails_fast_with_hint(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(503, headers={"Retry-After": "999999"}))
    hub, client = http_hub(upstream.url, fake_time, policy())
    async with client, hub:
        with pytest.raises(UpstreamStatusError) as info:
            await hub.call(LOCAL, "up.fetch")
    assert info.value.retry_after == 999999 and "retry after 999999 s" in str(info.value.hint)
    assert len(upstream.requests) == 1 and fake_time.sleeps == []


async def test_r6_retry_after_past_the_deadline_fails_at_once(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(503, headers={"Retry-After": "30"}))
    hub, client = http_hub(upstream.url, fake_time, policy(), limits=Limits(call_timeout=10))
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(LOCAL, "up.fetch")
    assert len(upstream.requests) == 1 and fake_time.sleeps == []


async def test_r7_gives_up_after_attempts_and_before_deadline(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(*[Reply(500)] * 10)
    hub, client = http_hub(
        upstream.url, fake_time, policy(max_attempts=3, base_delay=1.0), limits=Limits(call_timeout=60)
    )
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(LOCAL, "up.fetch")
    assert len(upstream.requests) == 3
    assert len(fake_time.sleeps) == 2  # no sleep after the last attempt


async def test_r7_last_sleep_never_crosses_the_deadline(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(*[Reply(500)] * 10)
    hub, client = http_hub(
        upstream.url,
        fake_time,
        policy(max_attempts=10, base_delay=4.0, max_delay=8.0),
        limits=Limits(call_timeout=10),
    )
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(LOCAL, "up.fetch")
    assert sum(fake_time.sleeps) < 10
    assert len(upstream.requests) < 10


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
async def test_r8_client_errors_are_not_retried(upstream: Upstream, fake_time: FakeTime, status: int) -> None:
    upstream.then(Reply(status, body={"error": "nope"}))
    hub, client = http_hub(upstream.url, fake_time, policy())
    async with client, hub:
        with pytest.raises(UpstreamStatusError) as info:
            await hub.call(LOCAL, "up.fetch")
    assert info.value.upstream_status == status and info.value.body == '{"error": "nope"}'
    assert len(upstream.requests) == 1


async def test_r13_only_one_layer_retries(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(*[Reply(503)] * 20)
    hub, client = http_hub(upstream.url, fake_time, policy(max_attempts=3))
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(LOCAL, "up.fetch")
    assert len(upstream.requests) == 3  # not 3 x (client retries) x (tool retries)


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_r8_401_refreshes_once_then_retries_then_asks_to_reconnect(max_attempts: int) -> None:
    from toolbridge.errors import CredentialsError
    from toolbridge.resilience import Attempt, Resilience

    refreshes: list[int] = []
    answers = iter([401, 200])

    async def refresh() -> None:
        refreshes.append(1)

    async def call() -> str:
        status = next(answers, 401)
        if status != 200:
            raise UpstreamStatusError("unauthorized", upstream_status=401)
        return "ok"

    resilience = Resilience()
    resilience.configure("up", ResiliencePolicy(retry=RetryPolicy(max_attempts=max_attempts)))
    attempt = Attempt("up", "up.fetch", idempotent=True, deadline=None, refresh=refresh)
    assert await resilience.run(attempt, call) == "ok"  # refreshed once, then the retry worked
    answers = iter([401, 401])
    with pytest.raises(CredentialsError, match="refused the credentials"):
        await resilience.run(attempt, call)  # a second 401 after the refresh: a person must reconnect
    assert len(refreshes) == 2
