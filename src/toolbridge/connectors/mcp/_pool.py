"""Upstream sessions of one connector kept per connection: bounded (least recently used first out) and
closed when idle.

An upstream in the handshake era (or over legacy SSE) may bind a session to the user who opened it, so
a call made with a connection other than the connector's default one gets a session opened with that
connection's credentials. The pool opens each one once even when many calls ask at the same time, keeps
at most ``size`` (the least recently used one not in use is closed to make room), and :meth:`sweep`
closes those unused for ``idle`` seconds. A session in use is never closed under a call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from toolbridge.connectors.mcp._session import Session

__all__ = ["SessionPool"]

Opener = Callable[[], Awaitable[Session]]


@dataclass(slots=True)
class _Entry:
    session: Session
    last_used: float
    in_use: int = 0


class SessionPool:
    def __init__(self, *, size: int = 64, idle: float = 300.0) -> None:
        if size < 1 or idle <= 0:
            raise ValueError("a session pool needs size >= 1 and idle > 0")
        self.size = size
        self.idle = idle
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, anyio.Lock] = {}
        self.opened = 0
        """How many sessions the pool opened in all."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    async def acquire(self, key: str, open_session: Opener) -> Session:
        """The live session of ``key``, opened (once, however many ask) when there is none; release it."""
        entry = self._entries.get(key)
        if entry is None or not entry.session.alive:
            entry = await self._open(key, open_session)
        self._entries.move_to_end(key)
        entry.in_use += 1
        entry.last_used = anyio.current_time()
        return entry.session

    def release(self, key: str, session: Session) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.session is session:
            entry.in_use = max(0, entry.in_use - 1)
            entry.last_used = anyio.current_time()

    async def retire(self, key: str, session: Session) -> None:
        """Forget and close ``session`` (broken or expired); the next :meth:`acquire` opens another."""
        entry = self._entries.get(key)
        if entry is not None and entry.session is session:
            del self._entries[key]
        await _close(session)

    async def sweep(self, now: float | None = None) -> int:
        """Close the sessions unused for ``idle`` seconds (at ``now``); how many were closed."""
        now = anyio.current_time() if now is None else now
        stale = [k for k, e in self._entries.items() if not e.in_use and now - e.last_used >= self.idle]
        closing = [self._entries.pop(key).session for key in stale]  # all out before the first close
        for session in closing:  # waits: a call meanwhile opens a new session rather than take one of these
            await _close(session)
        return len(closing)

    async def run_sweeper(self) -> None:
        """Sweep every quarter of ``idle`` seconds, until cancelled (a task of the connector's)."""
        while True:
            await anyio.sleep(self.idle / 4)
            await self.sweep()

    async def aclose(self) -> None:
        entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            await _close(entry.session)

    async def _open(self, key: str, open_session: Opener) -> _Entry:
        lock = self._locks.setdefault(key, anyio.Lock())
        try:
            async with lock:
                entry = self._entries.get(key)
                if entry is not None and entry.session.alive:
                    return entry  # another call opened it while this one waited
                if entry is not None:
                    await self.retire(key, entry.session)
                session = await open_session()
                self.opened += 1
                entry = _Entry(session, anyio.current_time())
                self._entries[key] = entry
                await self._evict(keep=key)
                return entry
        finally:
            if lock.statistics().tasks_waiting == 0 and not lock.locked():
                self._locks.pop(key, None)

    async def _evict(self, *, keep: str) -> None:
        """Close the least recently used sessions not in use while there are more than ``size``."""
        while len(self._entries) > self.size:
            key = next((k for k, e in self._entries.items() if not e.in_use and k != keep), None)
            if key is None:
                return  # every one is in use: the pool is over its size until some are released
            await _close(self._entries.pop(key).session)


async def _close(session: Session) -> None:
    with anyio.CancelScope(shield=True):
        await session.aclose()
