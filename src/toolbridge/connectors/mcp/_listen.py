"""Change notifications from a stateless-era (2026-07-28) upstream: a standing ``subscriptions/listen``.

In the handshake era an upstream sends ``notifications/*/list_changed`` whenever it likes. In the
stateless era there is no standing channel: a client that wants them holds a ``subscriptions/listen``
request open, and the notifications arrive on that request's stream. The session's channel hands them
to the connector like any other notification, so the connector's handling stays the same. Changes made
before the stream was acknowledged are told by no one, so the connector lists again on the
acknowledgment (``notifications/subscriptions/acknowledged``).

Resource subscriptions are part of the same stream in that era (``resourceSubscriptions``): the URIs
agents subscribed to are kept in :class:`Watched`, and a new stream is opened, at once, whenever that
set changes (there is no other way to change what a listen stream carries). The stream it replaces stays
open until the new one is acknowledged, so an update the upstream sends meanwhile arrives on one of them
(it may arrive twice; a resource update says only that the resource changed, so a second one is
harmless, where a lost one leaves an agent with stale content).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import httpx2

from toolbridge.connectors.mcp._channel import SessionExpired
from toolbridge.connectors.mcp._session import RpcError, Session
from toolbridge.errors import ToolbridgeError
from toolbridge.resilience._retry import Backoff

__all__ = ["Watched", "listen_for_changes"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_KINDS = {"tools": "toolsListChanged", "prompts": "promptsListChanged", "resources": "resourcesListChanged"}
_AGAIN = 1.0
"""Seconds before listening again after a stream ended gracefully (not a retry: no testing switch)."""
_RELISTEN = Backoff(attempts=1, base=2.0, max_delay=30.0)
"""The growing wait before listening again while the stream keeps failing."""
_SHORT_STREAM = 10.0
"""A stream that ended sooner than this counts as failing (a server ending every stream at once)."""


class Watched:
    """The upstream URIs agents subscribed to, for a stateless-era upstream's listen stream."""

    def __init__(self) -> None:
        self.uris: set[str] = set()
        self._changed = anyio.Event()
        self._acknowledged = anyio.Event()

    def add(self, uri: str) -> None:
        self._change(self.uris | {uri})

    def discard(self, uri: str) -> None:
        self._change(self.uris - {uri})

    def _change(self, uris: set[str]) -> None:
        if uris != self.uris:
            self.uris = uris
            self._changed.set()
            self._changed = anyio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def filter(self) -> dict[str, object]:
        return {"resourceSubscriptions": sorted(self.uris)} if self.uris else {}

    def acknowledge(self) -> None:
        """The upstream acknowledged a listen stream (``notifications/subscriptions/acknowledged``)."""
        self._acknowledged.set()
        self._acknowledged = anyio.Event()

    def next_acknowledgment(self) -> anyio.Event:
        """Set by the next acknowledgment (take it before opening the stream it is for)."""
        return self._acknowledged


async def listen_for_changes(
    session: Session,
    current: Callable[[], bool],
    auth: Callable[[], Awaitable[httpx2.Auth | None]],
    watched: Watched | None = None,
) -> None:
    """Hold a listen request open on ``session`` while ``current()`` (no-op in the handshake era).

    Asks for the list changes the upstream's capabilities declare. A server that does not serve
    ``subscriptions/listen`` is left alone (its lists are read again on each reconnection); a stream
    that ends or fails is opened again, with a growing delay while it keeps failing, for as long as
    the session is the connector's current one (a new session listens anew). Each attempt signs with
    ``auth()`` afresh, so a rotated or refreshed connection is used from the next attempt on.
    """
    if not session.modern:
        return
    wanted = {
        key: True
        for kind, key in _KINDS.items()
        if isinstance(capability := session.capabilities.get(kind), dict) and capability.get("listChanged")
    }
    if not wanted and watched is None:
        return
    async with anyio.create_task_group() as tg:
        try:
            await _Listener(session, auth, wanted, watched, tg).run(current)
        finally:
            tg.cancel_scope.cancel()


class _Listener:
    """The loop of :func:`listen_for_changes`: opens a stream after another, and counts their failures."""

    def __init__(
        self,
        session: Session,
        auth: Callable[[], Awaitable[httpx2.Auth | None]],
        wanted: dict[str, bool],
        watched: Watched | None,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        self._session = session
        self._auth = auth
        self._wanted = wanted
        self._watched = watched
        self._tg = tg
        self._failures = 0
        self._standing: _Stream | None = None
        """The acknowledged stream; replaced by a new one only once that is acknowledged."""

    async def run(self, current: Callable[[], bool]) -> None:
        while current():
            notifications = self._wanted | (self._watched.filter() if self._watched is not None else {})
            if not notifications:  # nothing to listen for until an agent subscribes
                _end(self._standing)
                self._standing = None
                await self._watched.changed()  # type: ignore[union-attr]
                continue
            started = anyio.current_time()
            stream = _Stream()
            acked = self._watched.next_acknowledgment() if self._watched is not None else None
            params: dict[str, object] = {"notifications": notifications}
            self._tg.start_soon(stream.run, self._session, params, self._auth)
            if await self._superseded(stream, acked):
                self._failures = 0
                continue
            if self._standing is stream:
                self._standing = None
            if not self._count(stream, started):
                return
            await anyio.sleep(_AGAIN if self._failures == 0 else _RELISTEN.delay(self._failures))

    async def _superseded(self, stream: _Stream, acked: anyio.Event | None) -> bool:
        """Wait until ``stream`` ended (False) or the watched URIs changed, so that a new stream is to be
        opened at once (True); an acknowledged ``stream`` becomes the standing one."""
        if self._watched is None or acked is None:
            await stream.ended.wait()
            return False
        waits: dict[str, Callable[[], Awaitable[Any]]] = {
            "ended": stream.ended.wait,
            "changed": self._watched.changed,
            "acked": acked.wait,
        }
        first = await _first(waits)
        if first == "changed":  # before it was acknowledged: the standing one stays
            stream.scope.cancel()
            return True
        if first == "acked":
            _end(self._standing)
            self._standing = stream
            del waits["acked"]
            # changed: a new stream at once; this one stands until that one is acknowledged
            return await _first(waits) == "changed"
        return False

    def _count(self, stream: _Stream, started: float) -> bool:
        """Count how ``stream`` ended in the failures in a row; False: the upstream does not listen."""
        if isinstance(stream.failed, RpcError):
            logger.info(
                "%s does not take subscriptions/listen (%s)", self._session.channel.describe, stream.failed
            )
            return False
        if stream.failed is not None:  # unavailable, 401/403/5xx, not connected
            logger.debug("the listen stream of %s ended: %s", self._session.channel.describe, stream.failed)
            self._failures += 1
        else:
            short = anyio.current_time() - started < _SHORT_STREAM
            self._failures = self._failures + 1 if short else 0
        return True


class _Stream:
    """One ``subscriptions/listen`` request: :meth:`run` holds it until it ends (``failed`` says how, None:
    gracefully) or ``scope`` is cancelled; ``ended`` is set either way."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.ended = anyio.Event()
        self.failed: Exception | None = None

    async def run(
        self,
        session: Session,
        params: dict[str, object],
        auth: Callable[[], Awaitable[httpx2.Auth | None]],
    ) -> None:
        with self.scope:
            try:
                await session.request("subscriptions/listen", params, auth=await auth(), cancellable=False)
            except (RpcError, ToolbridgeError, SessionExpired) as exc:
                self.failed = exc
        self.ended.set()


def _end(stream: _Stream | None) -> None:
    if stream is not None:
        stream.scope.cancel()


async def _first(waits: dict[str, Callable[[], Awaitable[Any]]]) -> str:
    """The name of the wait that finished first (the others are cancelled)."""
    winner = ""
    async with anyio.create_task_group() as tg:

        async def run(name: str, wait: Callable[[], Awaitable[Any]]) -> None:
            nonlocal winner
            await wait()
            winner = winner or name
            tg.cancel_scope.cancel()

        for name, wait in waits.items():
            tg.start_soon(run, name, wait)
    return winner
