"""Background work of a hub: the outbox worker (``toolbridge worker``, or inside ``toolbridge serve``)."""

from __future__ import annotations

import logging

import anyio

from toolbridge.connectors import Invocation
from toolbridge.errors import BadRequest, ToolbridgeError, UpstreamError
from toolbridge.hub import Hub
from toolbridge.resilience._outbox import OutboxItem

__all__ = ["OutboxWorker", "add_outbox_tool"]

logger = logging.getLogger("toolbridge.outbox")


class OutboxWorker:
    """Retries due outbox items through ``Hub`` (the full call path, as the original principal)."""

    def __init__(self, hub: Hub, *, poll_interval: float = 1.0, batch: int = 10) -> None:
        self._hub = hub
        self._poll = poll_interval
        self._batch = batch

    async def run(self) -> None:
        """Process items until cancelled."""
        while True:
            if await self.run_once() == 0:
                await anyio.sleep(self._poll)

    async def run_once(self) -> int:
        items = await self._hub.outbox.claim_due(self._batch)
        for item in items:
            await self._process(item)
        return len(items)

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
        except UpstreamError as exc:
            await hub.outbox.retry_later(item, exc)
            return
        except ToolbridgeError as exc:  # the call itself is wrong now (scope revoked, tool gone): stop
            await hub.outbox.fail(item, exc)
            return
        stored = {
            "value": result.value,
            "text": result.text,
            "truncated": result.truncated,
            "size": result.size,
        }
        await hub.outbox.succeed(item, stored)
        if not item.idempotency_key.startswith("outbox-"):
            await hub.idempotency.complete(item.principal, item.idempotency_key, result=stored)


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
