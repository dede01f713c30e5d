"""Change notifications from a stateless-era (2026-07-28) upstream: a standing ``subscriptions/listen``.

In the handshake era an upstream sends ``notifications/*/list_changed`` whenever it likes. In the
stateless era there is no standing channel: a client that wants them holds a ``subscriptions/listen``
request open, and the notifications arrive on that request's stream. The session's channel hands them
to the connector like any other notification, so the connector's handling stays the same. Changes made
before the stream was acknowledged are told by no one, so the connector lists again on the
acknowledgment (``notifications/subscriptions/acknowledged``).

Resource subscriptions are part of the same stream in that era (``resourceSubscriptions``): the URIs
agents subscribed to are kept in :class:`Watched`, and the stream is opened again, at once, whenever
that set changes (there is no other way to change what a listen stream carries).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
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
    failures = 0
    while current():
        notifications = wanted | (watched.filter() if watched is not None else {})
        if not notifications:  # nothing to listen for until an agent subscribes
            await watched.changed()  # type: ignore[union-attr]
            continue
        started = anyio.current_time()
        try:
            if await _listen_once(session, notifications, auth, watched):
                failures = 0
                continue  # what to listen for changed: at once, with the new set
            short = anyio.current_time() - started < _SHORT_STREAM
            failures = failures + 1 if short else 0
        except RpcError as exc:
            logger.info("%s does not take subscriptions/listen (%s)", session.channel.describe, exc)
            return
        except (ToolbridgeError, SessionExpired) as exc:  # unavailable, 401/403/5xx, not connected
            logger.debug("the listen stream of %s ended: %s", session.channel.describe, exc)
            failures += 1
        await anyio.sleep(_AGAIN if failures == 0 else _RELISTEN.delay(failures))


async def _listen_once(
    session: Session,
    notifications: dict[str, object],
    auth: Callable[[], Awaitable[httpx2.Auth | None]],
    watched: Watched | None,
) -> bool:
    """One listen stream, until it ends (False) or the watched URIs change (True: ended by us)."""
    changed = False
    async with anyio.create_task_group() as tg:

        async def stop_on_change(w: Watched) -> None:
            nonlocal changed
            await w.changed()
            changed = True
            tg.cancel_scope.cancel()

        if watched is not None:
            tg.start_soon(stop_on_change, watched)
        failed: Exception | None = None  # (stays None when a change cancels the request)
        try:
            await session.request(
                "subscriptions/listen", {"notifications": notifications}, auth=await auth(), cancellable=False
            )
        except (RpcError, ToolbridgeError, SessionExpired) as exc:  # raised as itself, not in a group
            failed = exc
        tg.cancel_scope.cancel()
    if failed is not None:
        raise failed
    return changed
