"""The one retry helper of toolbridge's own housekeeping (resilience/_retry.py) and its testing switch."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolbridge.errors import StorageError
from toolbridge.resilience import Resilience
from toolbridge.resilience._retry import Backoff, is_testing, retry, retry_sync, without_waits

pytestmark = pytest.mark.anyio
logger = logging.getLogger("tests.retry")


def flaky(failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(len(calls))
        if len(calls) <= failures:
            raise StorageError("database is locked")
        return "stored"

    return calls, fn


async def test_a_named_failure_is_retried_until_it_succeeds_without_waiting_under_the_switch() -> None:
    calls, fn = flaky(2)

    async def store() -> str:
        return fn()  # type: ignore[operator,no-any-return]

    with without_waits():
        assert is_testing()
        result = await retry(store, on=(StorageError,), backoff=Backoff(attempts=3), what="x", logger=logger)
    assert (result, len(calls), is_testing()) == ("stored", 3, False)


async def test_the_last_failure_is_raised_after_the_attempts_and_others_are_not_retried() -> None:
    calls, fn = flaky(5)

    async def store() -> str:
        return fn()  # type: ignore[operator,no-any-return]

    with without_waits(), pytest.raises(StorageError):
        await retry(store, on=(StorageError,), backoff=Backoff(attempts=3), what="x", logger=logger)
    assert len(calls) == 3

    async def wrong() -> str:
        calls.append(-1)
        raise ValueError("not a storage error")

    with without_waits(), pytest.raises(ValueError, match="not a storage error"):
        await retry(wrong, on=(StorageError,), backoff=Backoff(attempts=3), what="x", logger=logger)
    assert calls.count(-1) == 1


def test_the_thread_version_retries_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    calls, fn = flaky(1)
    with without_waits():
        result = retry_sync(fn, on=(StorageError,), backoff=Backoff(), what="the audit write", logger=logger)  # type: ignore[arg-type]
    assert (result, len(calls)) == ("stored", 2)
    assert "the audit write failed (attempt 1 of 3); retrying" in caplog.text


@given(
    failures=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=60),
)
def test_waits_grow_capped_and_jittered_down_by_at_most_half(failures: int, base: float, cap: float) -> None:
    ceiling = min(cap, base * 2.0 ** (failures - 1))
    assert ceiling / 2 <= Backoff(base=base, max_delay=cap).delay(failures) <= ceiling
    assert Backoff().delay(0) == 0.0
    with without_waits():
        assert Backoff(base=base, max_delay=cap).delay(failures) == 0.0


def test_the_waits_resilience_records_are_a_bounded_ring() -> None:
    waits = Resilience().waits
    waits.extend(float(n) for n in range(100_000))
    assert 0 < len(waits) == waits.maxlen < 100_000 and waits[-1] == 99_999.0
