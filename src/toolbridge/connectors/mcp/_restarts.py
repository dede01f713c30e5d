"""How often an upstream failed in a row, and how long to wait before trying it again.

The connector's shared session is restarted after a failure with a growing delay (``RESTART_DELAYS``,
the last one repeating); a call whose deadline ends before the next try is refused at once instead of
waiting. :attr:`Restarts.status` is the line ``toolbridge health`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from toolbridge.errors import UpstreamUnavailable

__all__ = ["RESTART_DELAYS", "Restarts"]

RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before restarting a server after 1, 2, 3 … consecutive failures (the last one repeats)."""


class Restarts:
    """Consecutive failures of one connector's upstream, and the backoff they call for."""

    def __init__(self, name: str, delays: Sequence[float] = RESTART_DELAYS) -> None:
        self._name = name
        self._delays = tuple(delays) or (0.0,)
        self.failures = 0
        self.down_at = 0.0
        self.last_error: str | None = None

    def failed(self, error: str | None = None) -> None:
        """Count one more failure in a row (``error``: what ``status`` shows; None keeps the last one)."""
        self.failures += 1
        self.down_at = anyio.current_time()
        if error is not None:
            self.last_error = error

    def succeeded(self) -> None:
        self.failures = 0

    @property
    def delay(self) -> float:
        """Seconds between the last failure and the next try (0 while nothing failed)."""
        if self.failures == 0:
            return 0.0
        return self._delays[min(self.failures, len(self._delays)) - 1]

    def status(self, *, connected: bool, running: bool) -> str:
        """The upstream as ``toolbridge health`` shows it: connected, starting, or failing and retried."""
        if connected:
            return "connected"
        if self.failures == 0 or self.last_error is None:
            return "starting" if running else "stopped"
        wait = max(0.0, self.down_at + self.delay - anyio.current_time())
        return f"down: failed {self.failures} time(s), next try in {wait:.0f} s: {self.last_error}"

    async def wait(self, deadline: float | None) -> None:
        """Sleep until the next try is due; refuse when that is past ``deadline``."""
        if self.failures == 0:
            return
        wait = self.down_at + self.delay - anyio.current_time()
        if wait <= 0:
            return
        if deadline is not None and anyio.current_time() + wait > deadline:
            raise UpstreamUnavailable(
                f"the upstream of connector {self._name!r} failed {self.failures} time(s) in a row; "
                f"toolbridge reconnects in {wait:.1f} s",
                sent=False,
                hint=f"try again in {wait:.1f} s",
            )
        await anyio.sleep(wait)
