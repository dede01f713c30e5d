"""Turns: one SQLite transaction of this process at a time, first come first served.

SQLite admits one writer at a time. Without turns, a task whose write finds the file locked by another
task of the same process sleeps in SQLite's busy handler (in steps of up to 100 ms) while the event loop
could have run the holder to its commit at once; with many tasks, most of the time goes to those sleeps.

A transaction opened inside a turn (by the same task, or by a task started meanwhile, which inherits the
context) is part of that turn: queueing behind it would wait for itself. A waiter gives up its place only
when the turn has not changed hands for ``stall`` seconds — the holder waits for something that needs a
transaction of its own — and then goes ahead as it would without turns (SQLite's busy timeout applies);
:attr:`Turns.stalls` counts those. A long queue that keeps moving never makes a waiter give up.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextvars import ContextVar, Token

import anyio

__all__ = ["Turns"]

logger = logging.getLogger(__name__)

_held: ContextVar[object | None] = ContextVar("toolbridge_turn", default=None)
"""The turn this task holds, or the task that started it held when it did."""


class Turns:
    def __init__(self, stall: float = 1.0) -> None:
        self.stall = stall
        self.stalls = 0
        """Waiters that went ahead without a turn because it did not change hands for ``stall`` seconds."""
        self._holder: object | None = None
        self._since = time.monotonic()  # when the turn last changed hands
        self._queue: deque[anyio.Event] = deque()

    def inside(self) -> bool:
        """Whether this task runs inside the turn now held (then it must not queue for another)."""
        return self._holder is not None and _held.get() is self._holder

    async def take(self) -> object | None:
        """Wait for the turn; returns its token for :meth:`give_back`, or None after a stall."""
        if self._holder is None and not self._queue:
            return self._hand_over()
        called = anyio.Event()
        self._queue.append(called)
        try:
            while True:
                with anyio.move_on_after(self.stall):
                    await called.wait()
                if called.is_set():
                    return self._holder
                if time.monotonic() - self._since >= self.stall:
                    self._queue.remove(called)
                    self.stalls += 1
                    logger.warning(
                        "a SQLite transaction went ahead without its turn: the turn has not changed hands "
                        "for %.1f s (its holder waits for a task that needs a transaction)",
                        self.stall,
                    )
                    return None
        except BaseException:
            if called.is_set():  # handed the turn while being cancelled: pass it on
                self.give_back(self._holder)
            else:
                self._queue.remove(called)
            raise

    def enter(self, token: object | None) -> Token[object | None]:
        """Mark this task's context as inside ``token``'s turn; returns what :meth:`leave` needs."""
        return _held.set(token)

    def leave(self, mark: Token[object | None]) -> None:
        _held.reset(mark)

    def give_back(self, token: object | None) -> None:
        """End the turn ``token`` (None: a waiter that went ahead without one; nothing to end)."""
        if token is None or token is not self._holder:
            return
        self._holder = None
        if self._queue:
            self._hand_over()
            self._queue.popleft().set()

    def _hand_over(self) -> object:
        self._holder = object()
        self._since = time.monotonic()
        return self._holder
