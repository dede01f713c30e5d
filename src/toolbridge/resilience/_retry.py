"""One retry helper for toolbridge's own housekeeping: storing a refreshed token, writing an audit batch,
listening to an upstream again. (A tool call's attempts are :class:`Resilience`'s: they classify the
upstream's answer; these retry a named failure of our own storage or a stream that ended.)

Every retry names what it retries, is capped by attempts, and waits a jittered, growing delay. Tests
switch the waits off with :func:`set_testing` (as stamina's ``set_testing``): the attempts still happen,
at once, so a test of "the write is retried" needs no sleeping and no clock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio

__all__ = ["Backoff", "is_testing", "retry", "retry_sync", "set_testing", "without_waits"]

T = TypeVar("T")

_testing = False
_rng = random.Random()


def set_testing(enabled: bool) -> None:
    """Waits of every :class:`Backoff` are zero while ``enabled`` (tests only)."""
    global _testing
    _testing = enabled


def is_testing() -> bool:
    return _testing


@contextmanager
def without_waits() -> Iterator[None]:
    """No waits inside the block (restores the previous setting after)."""
    before = _testing
    set_testing(True)
    try:
        yield
    finally:
        set_testing(before)


@dataclass(frozen=True, slots=True)
class Backoff:
    """``attempts`` tries; before try ``n + 1`` a wait of ``base * 2**(n-1)`` capped at ``max_delay``,
    jittered down by up to half (so replicas that failed together do not retry together)."""

    attempts: int = 3
    base: float = 0.1
    max_delay: float = 5.0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures (0 for none, and under the testing switch)."""
        if failures <= 0 or _testing:
            return 0.0
        ceiling = min(self.max_delay, self.base * 2.0 ** (failures - 1))
        return ceiling * _rng.uniform(0.5, 1.0)


async def retry(
    fn: Callable[[], Awaitable[T]],
    *,
    on: tuple[type[Exception], ...],
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
) -> T:
    """``await fn()``, again after a wait when it raises one of ``on``; the last failure is raised."""
    for number in range(1, backoff.attempts + 1):
        try:
            return await fn()
        except on:
            wait = _after_failure(number, backoff, what, logger)
        await anyio.sleep(wait)
    raise AssertionError("unreachable: attempts must be at least 1")


def retry_sync(
    fn: Callable[[], T],
    *,
    on: tuple[type[Exception], ...],
    backoff: Backoff,
    what: str,
    logger: logging.Logger,
) -> T:
    """:func:`retry` for a worker thread (it sleeps the thread)."""
    for number in range(1, backoff.attempts + 1):
        try:
            return fn()
        except on:
            wait = _after_failure(number, backoff, what, logger)
        time.sleep(wait)
    raise AssertionError("unreachable: attempts must be at least 1")


def _after_failure(number: int, backoff: Backoff, what: str, logger: logging.Logger) -> float:
    """The wait before attempt ``number + 1``; re-raises the failure being handled when it was the last."""
    if number >= backoff.attempts:
        raise  # (called from the except block of the failure it re-raises)
    logger.warning("%s failed (attempt %d of %d); retrying", what, number, backoff.attempts)
    return backoff.delay(number)
