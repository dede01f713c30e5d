"""Outlier ejection: one connection of a connector that keeps failing is taken out for a while
(RELIABILITY.md R12, modelled on Envoy's outlier detection).

A connector with per-user connections serves many credentials (accounts) against one upstream. When one
of them answers 5xx (or no answer at all) ``consecutive_failures`` times in a row — its account is
broken, the others are fine — that connection is *ejected*: its calls fail fast with ``CircuitOpen``
(naming the connection) for ``base_ejection_seconds × n`` (``n``: its ejection count, capped by
``max_ejection_seconds``), and its failures stop counting toward the connector's breaker, so the other
connections keep being served. Any attempt that is not a failure resets the consecutive count. After
each further ``base_ejection_seconds`` back in service without a new ejection, ``n`` drops by one.

At most ``max(1, floor(N × max_ejection_percent / 100))`` connections are ejected at once, N being the
connections seen within ``active_seconds`` (like Envoy, one may always be ejected); at the cap a failing
connection is not ejected and fails as it would without ejection.

This is the process's detector; with Redis the replicas share one (``_shared_outlier.py``), and this
one keeps what the shared one decided (for health) and decides while Redis does not answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from toolbridge.errors import CircuitOpen
from toolbridge.resilience._policy import OutlierPolicy

__all__ = ["Ejection", "OutlierDetector"]


@dataclass(frozen=True, slots=True)
class Ejection:
    """One ejected connection, as health reports show it (its id, never its secret)."""

    connection: str
    seconds_left: float
    ejections: int
    """How many times in a row (without decaying back) it was ejected: the multiplier of its time."""


@dataclass(slots=True)
class _Host:
    seen: float
    failures: int = 0
    """Consecutive failed attempts."""
    ejections: int = 0
    """The ejection count at the last ejection (decays once the connection is back)."""
    until: float = -math.inf
    """End of the current (or last) ejection."""


class OutlierDetector:
    """The connections of one connector: their consecutive failures and ejections."""

    def __init__(self, connector: str, policy: OutlierPolicy, *, clock: Callable[[], float]) -> None:
        self.connector = connector
        self.policy = policy
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._pruned = -math.inf  # (the clock may need a running event loop: not read here)

    def admit(self, connection: str | None, tool: str | None = None) -> None:
        """Note the connection as active; raise :class:`CircuitOpen` while it is ejected."""
        if connection is None or not self.policy.enabled:
            return
        now = self._clock()
        if now - self._pruned > self.policy.active_seconds:
            self._prune(now)
        host = self._hosts.get(connection)
        if host is None:
            self._hosts[connection] = _Host(seen=now)
            return
        host.seen = now
        if now < host.until:
            raise self.refusal(connection, host.until - now, host.ejections, tool)

    def record(self, connection: str | None, failure: bool) -> bool:
        """Count an attempt's outcome; True when this failure ejected the connection."""
        if connection is None or not self.policy.enabled:
            return False
        now = self._clock()
        host = self._hosts.setdefault(connection, _Host(seen=now))
        host.seen = now
        if not failure:
            host.failures = 0
            return False
        host.failures += 1
        if host.failures < self.policy.consecutive_failures or now < host.until:
            return False
        if len(self.ejected()) >= self.cap():
            return False  # at the cap: it fails as it would without ejection
        host.ejections = self.count(host, now) + 1
        host.until = now + self.ejection_seconds(host.ejections)
        host.failures = 0
        return True

    def ejects(self, connection: str | None) -> bool:
        """Whether the connection is ejected now (a call that began before then is finishing)."""
        host = self._hosts.get(connection) if connection is not None else None
        return host is not None and self._clock() < host.until

    def ejection_seconds(self, n: int) -> float:
        """``base_ejection_seconds × n``, at most ``max_ejection_seconds``."""
        return min(self.policy.base_ejection_seconds * n, self.policy.max_ejection_seconds)

    def count(self, host: _Host, now: float) -> int:
        """The host's ejection count now: one less per ``base_ejection_seconds`` back in service."""
        if now < host.until or host.ejections == 0:
            return host.ejections
        healthy = now - host.until
        return max(0, host.ejections - int(healthy // self.policy.base_ejection_seconds))

    def cap(self) -> int:
        """How many connections may be ejected at once: a share of those active, at least one."""
        now = self._clock()
        active = sum(1 for h in self._hosts.values() if self._active(h, now))
        return max(1, math.floor(active * self.policy.max_ejection_percent / 100))

    def ejected(self) -> list[Ejection]:
        """The connections ejected now, the longest left first."""
        now = self._clock()
        out = [
            Ejection(name, round(h.until - now, 3), h.ejections)
            for name, h in self._hosts.items()
            if now < h.until
        ]
        return sorted(out, key=lambda e: (-e.seconds_left, e.connection))

    def _active(self, host: _Host, now: float) -> bool:
        return now < host.until or now - host.seen <= self.policy.active_seconds

    def _prune(self, now: float) -> None:
        """Forget connections neither active nor still carrying an ejection count."""
        self._pruned = now
        gone = [n for n, h in self._hosts.items() if not self._active(h, now) and self.count(h, now) == 0]
        for name in gone:
            del self._hosts[name]

    def note(self, connection: str, seconds: float, ejections: int) -> None:
        """Keep an ejection the shared detector decided (for health, and for this process's decisions
        while the shared one does not answer)."""
        now = self._clock()
        host = self._hosts.setdefault(connection, _Host(seen=now))
        host.seen, host.until, host.ejections, host.failures = now, now + seconds, ejections, 0

    def refusal(self, connection: str, wait: float, ejections: int, tool: str | None) -> CircuitOpen:
        """The error of a call of an ejected connection."""
        return CircuitOpen(
            f"connection {connection!r} of connector {self.connector!r} is ejected for {wait:.0f} s more: "
            f"its calls kept failing (5xx or no answer, {self.policy.consecutive_failures} in a row; "
            f"ejection {ejections}); the connector's other connections are still served",
            retry_after=wait,
            hint=f"try again in {math.ceil(wait)} s; if this account keeps failing, check it at the upstream "
            f"or test it (POST /v1/connections/{connection}/test, 'toolbridge connections test "
            f"{connection}') and reconnect it if that fails",
            tool=tool,
        )
