"""Background work of a hub: the outbox worker (``toolbridge worker``, or inside ``toolbridge serve``).

Safe by construction:

- **leases** — a batch is claimed under a lease token; a heartbeat renews the leases of the items still
  held every third of the lease, each item's lease is checked right before its call, and its outcome is
  recorded only under the worker's own token (another worker that took an item over owns its outcome);
- **batches that cannot outlive their lease** — at most ``lease / call_timeout`` items per claim;
- **classification** (:func:`verdict`) — transient conditions are rescheduled (rate limited, breaker open,
  connector busy, storage errors and token-endpoint failures without using up an attempt; upstream 5xx,
  resets and timeouts using one), a needed re-authorization or configuration fix (a client the provider
  refuses) parks the item until a person reconnects or an operator fixes it, and only what can never
  succeed fails for good — each permanent failure is logged and emitted as an event (``LogMessage`` with
  ``data.event == "outbox.failed"``) for the agents that see the connector.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Literal

import anyio

from toolbridge.connectors import Invocation
from toolbridge.connectors._events import LogMessage
from toolbridge.errors import (
    BadRequest,
    CircuitOpen,
    ConfigurationError,
    CredentialsError,
    OutcomeUnknown,
    RateLimited,
    StorageError,
    TokenRefreshFailed,
    ToolbridgeError,
    UpstreamBusy,
    UpstreamError,
    UpstreamStatusError,
    problem,
)
from toolbridge.hub import Hub
from toolbridge.resilience._outbox import OutboxItem
from toolbridge.resilience._policy import NOT_PROCESSED_STATUSES, RETRYABLE_STATUSES

__all__ = ["OutboxWorker", "Verdict", "add_outbox_tool", "verdict"]

logger = logging.getLogger("toolbridge.outbox")

Verdict = Literal["retry", "wait", "park", "fail"]
"""``retry``: transient, uses up an attempt; ``wait``: transient and never reached the upstream (no
attempt used); ``park``: a person must reconnect; ``fail``: can never succeed (or is unsafe to repeat)."""


def verdict(exc: ToolbridgeError, *, safe_to_repeat: bool = True) -> Verdict:
    """What the worker does with an item whose call failed with ``exc``. ``safe_to_repeat``: the item's
    key reaches the upstream (or the tool is idempotent); if not, a status that does not say the request
    went unprocessed (500, 502, 504) fails it, as a reset does: the upstream may have applied it."""
    if isinstance(exc, RateLimited | CircuitOpen | UpstreamBusy | StorageError | TokenRefreshFailed):
        return "wait"
    if isinstance(exc, CredentialsError | ConfigurationError):  # a person reconnects, an operator fixes it
        return "park"
    if isinstance(exc, OutcomeUnknown):
        return "fail"  # the key does not travel: a retry could apply the write twice
    if isinstance(exc, UpstreamStatusError):
        status = exc.upstream_status
        if status not in RETRYABLE_STATUSES or not (safe_to_repeat or status in NOT_PROCESSED_STATUSES):
            return "fail"
        return "retry"
    return "retry" if isinstance(exc, UpstreamError) else "fail"


class OutboxWorker:
    """Retries due outbox items through ``Hub`` (the full call path, as the original principal)."""

    def __init__(self, hub: Hub, *, poll_interval: float = 1.0, batch: int = 10) -> None:
        self._hub = hub
        self._poll = poll_interval
        lease = hub.outbox.lease
        self._batch = max(1, min(batch, int(lease // hub.limits.call_timeout)))
        self.owner = f"{socket.gethostname()[:20]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._held: dict[str, OutboxItem] = {}

    async def run(self) -> None:
        """Process items until cancelled."""
        while True:
            try:
                count = await self.run_once()
            except StorageError as exc:  # the database is away: try again at the next poll
                logger.warning("outbox worker: %s", exc)
                count = 0
            if count == 0:
                await anyio.sleep(self._poll)

    async def run_once(self) -> int:
        """Claim a batch of due items and process them one by one; returns how many were claimed."""
        items = await self._hub.outbox.claim_due(self._batch, owner=self.owner)
        if not items:
            return 0
        self._held = {item.id: item for item in items}
        untried = dict(self._held)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat)
                for item in items:
                    del untried[item.id]  # from here on it may reach the upstream
                    if item.id in self._held and await self._still_mine(item):
                        await self._process(item)
                    self._held.pop(item.id, None)
                tg.cancel_scope.cancel()
        finally:
            if untried:  # stopped (SIGTERM) before their turn: due again now, not when the lease ends
                await self._release(list(untried.values()))
        return len(items)

    async def _release(self, items: list[OutboxItem]) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            try:
                await self._hub.outbox.release(items)
            except StorageError as exc:  # their leases end on their own
                logger.warning("outbox worker: could not give back %d leases: %s", len(items), exc)

    async def _heartbeat(self) -> None:
        interval = self._hub.outbox.lease / 3
        while True:
            await anyio.sleep(interval)
            await self._renew()

    async def _renew(self) -> None:
        held = list(self._held.values())
        try:
            kept = await self._hub.outbox.renew(held)
        except StorageError as exc:
            logger.warning("outbox worker: could not renew leases: %s", exc)
            return
        for item in held:
            if item.id not in kept:
                logger.warning("outbox item %s: lease taken over by another worker; leaving it", item.id)
                self._held.pop(item.id, None)

    async def _still_mine(self, item: OutboxItem) -> bool:
        return item.id in await self._hub.outbox.renew([item])

    async def _process(self, item: OutboxItem) -> None:
        hub = self._hub
        try:
            principal = await hub.agents.principal_for(item.principal)
            result = await hub._call(
                principal,
                item.tool,
                item.arguments,
                connection=None,
                idempotency_key=item.idempotency_key,
                request_id=None,
                from_outbox=True,
            )
        except ToolbridgeError as exc:
            await self._failed(item, exc)
            return
        stored = {
            "value": result.value,
            "text": result.text,
            "truncated": result.truncated,
            "size": result.size,
        }
        if await hub.outbox.succeed(item, stored) and item.callers_key:
            await hub.idempotency.complete(item.principal, item.idempotency_key, result=stored)

    async def _failed(self, item: OutboxItem, exc: ToolbridgeError) -> None:
        outbox = self._hub.outbox
        action = verdict(exc, safe_to_repeat=self._hub.safe_to_repeat(item.tool))
        if action == "park":
            await outbox.park(item, exc)
            return
        if action != "fail":
            wait = getattr(exc, "retry_after", None)
            state = await outbox.retry_later(
                item, exc, wait=wait if isinstance(wait, int | float) else None, counts=action == "retry"
            )
            if state != "failed":
                return
        elif not await outbox.fail(item, exc):
            return
        await self._announce_failure(item, exc, transient=action != "fail")

    async def _announce_failure(self, item: OutboxItem, exc: ToolbridgeError, *, transient: bool) -> None:
        """A permanent failure: logged, emitted as an event, and answered to a replay of the key — unless the
        attempts ran out on transient failures of a call safe to repeat (its key reaches the upstream): the
        upstream may have applied it, so the key is released and calling again with it runs the call
        again, applied once upstream (a stored failure told the caller to use a new key: applied twice)."""
        hub = self._hub
        logger.error(
            "outbox item %s (%s) failed for good after %d attempt(s): %s",
            item.id,
            item.tool,
            item.attempts,
            exc.message,
        )
        connector = item.tool.split(".", 1)[0]
        data = {"event": "outbox.failed", "outbox_id": item.id, "tool": item.tool, "error": problem(exc)}
        hub.events.emit(LogMessage(connector, "error", data, logger="toolbridge.outbox"))
        if not item.callers_key:
            return
        if transient and hub.safe_to_repeat(item.tool):
            await hub.idempotency.forget(item.principal, item.idempotency_key)
        else:
            await hub.idempotency.complete(item.principal, item.idempotency_key, error=exc)


def add_outbox_tool(hub: Hub) -> None:
    """Register ``outbox.status`` so agents can ask about their queued writes over any surface."""

    @hub.tool(connector="outbox", read_only=True, blocking=False)
    async def status(outbox_id: str, invocation: Invocation) -> dict[str, object]:
        """The state of a write that toolbridge queued for a later retry.

        Args:
            outbox_id: the id returned in the queued result.
        """
        item = await hub.outbox.get(outbox_id, principal=invocation.principal.id)
        if item is None:
            raise BadRequest(
                f"no queued write {outbox_id!r} of yours", hint="check the id from the queued result"
            )
        return item.as_dict()
