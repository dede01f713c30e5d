"""The delivery worker: outbound webhooks (Standard Webhooks signed) and tool calls, from leased rows.

Each webhook attempt: the URL passes the hub's SSRF guard (:mod:`toolbridge._urlguard`, the same rules as
URL import: public addresses on ports 80/443, the checked address pinned) unless its host is in the
subscription's ``allow_hosts``; the body is signed afresh (same ``webhook-id``, new ``webhook-timestamp`` and
``webhook-signature``); redirects are never followed (a 3xx is a failed attempt); the attempt is stopped
after the target's timeout (15 s by default). 2xx is success; 410 disables the endpoint and records a
``toolbridge.webhook.disabled`` event; anything else is retried on the schedule of :mod:`._deliveries`.

A tool target is called through ``Hub.call`` as the subscription's principal, with arguments rendered from
the event and the delivery id as idempotency key (a retried delivery is applied once). After an upstream
failure the key's stored failure is dropped when the call is safe to repeat (its key reaches the upstream,
or the tool is idempotent), so the next attempt calls again instead of replaying it.

The worker renews the leases of the rows it still works on every third of the lease. A row leased again
anyway while an earlier lease's call still runs (that worker stalled or could not renew) meets that key in
flight (409): it is tried again once the key's claim would end, using up no attempt, and then replays the
first call's outcome — never marked failed while that call may still succeed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx2
from standardwebhooks.webhooks import Webhook

from toolbridge._httpclient import closing_transport
from toolbridge._urlguard import Resolver, URLGuard, system_resolver
from toolbridge.errors import BadRequest, KeyInFlight, StorageError, ToolbridgeError, UpstreamError, problem
from toolbridge.events._deliveries import Deliveries, DeliveryItem
from toolbridge.events._model import Event
from toolbridge.events._service import EventService, ToolTarget, WebhookTarget, render

if TYPE_CHECKING:
    from toolbridge.hub import Hub

__all__ = ["DeliveryWorker", "delivery_worker", "webhook_body"]

logger = logging.getLogger("toolbridge.events")

_GUARD_WORDS = "refused by the SSRF guard: webhooks go only to public http(s) addresses on ports 80 and 443"


def webhook_body(event: Event) -> str:
    """The JSON body of an outbound webhook (Standard Webhooks shape: type, timestamp, data)."""
    return json.dumps(
        {
            "type": event.type,
            "timestamp": event.time.isoformat(timespec="milliseconds"),
            "data": event.as_dict(),
        },
        separators=(",", ":"),
    )


def delivery_worker(hub: Hub) -> DeliveryWorker | None:
    """The delivery worker of a hub with an event service (None without one)."""
    service = hub.event_service
    if service is None or service.deliveries is None:
        return None
    return DeliveryWorker(hub, service, service.deliveries)


class DeliveryWorker:
    """Delivers due rows until cancelled (``run``) or once (``run_once``)."""

    def __init__(
        self,
        hub: Hub,
        service: EventService,
        deliveries: Deliveries,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        resolver: Resolver = system_resolver,
        poll_interval: float = 1.0,
        batch: int = 10,
    ) -> None:
        self._hub = hub
        self._service = service
        self.deliveries = deliveries
        self._transport = transport
        self._resolver = resolver
        self._poll = poll_interval
        self._batch = batch
        self.purge_every = 600.0

    async def run(self) -> None:
        """Deliver until cancelled; every ``purge_every`` seconds, apply the log's retention."""
        purged = -self.purge_every
        async with self._client() as client:
            while True:
                try:
                    if anyio.current_time() - purged >= self.purge_every:
                        purged = anyio.current_time()
                        await self._service.log.purge()
                    done = await self.tick(client)
                except StorageError as exc:  # the database is away: try again at the next poll
                    logger.warning("delivery worker: %s", exc)
                    done = 0
                if done == 0:
                    await anyio.sleep(self._poll)

    async def tick(self, client: httpx2.AsyncClient | None = None) -> int:
        """Poll the due triggers, then attempt the due deliveries; returns how much was done."""
        emitted = await self._service.triggers.run_once() if self._service.triggers is not None else 0
        return emitted + await self.run_once(client)

    def _client(self) -> httpx2.AsyncClient:
        transport = self._transport or closing_transport()
        return httpx2.AsyncClient(transport=transport, trust_env=False, follow_redirects=False)

    async def run_once(self, client: httpx2.AsyncClient | None = None) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        if client is None:
            async with self._client() as own:
                return await self.run_once(own)
        items = await self.deliveries.claim_due(self._batch)
        working = {item.id: item for item in items}

        async def process(item: DeliveryItem) -> None:
            try:
                await self._process(client, item)
            except StorageError as exc:  # its outcome was not recorded: the lease ends and it is tried again
                logger.warning("delivery %s: storage failed: %s; it is tried again later", item.id, exc)
            except Exception as exc:  # a bug in one delivery must not stop the others, nor the server
                logger.exception("delivery %s to %s failed inside toolbridge", item.id, item.subscription)
                await self._contained(item, exc)
            finally:
                working.pop(item.id, None)

        async with anyio.create_task_group() as beat:
            beat.start_soon(self._keep_leases, working)
            async with anyio.create_task_group() as tg:
                for item in items:
                    tg.start_soon(process, item)
            beat.cancel_scope.cancel()
        return len(items)

    async def _contained(self, item: DeliveryItem, exc: Exception) -> None:
        """Count an attempt that failed inside toolbridge as a failed attempt: retried on the schedule, and
        failed for good (with its event) after the last, rather than leased again for ever."""
        detail = f"toolbridge failed while delivering it ({type(exc).__name__}); see the server log"
        try:
            await self._failed(item, {"detail": detail})
        except StorageError as storage:
            logger.warning("delivery %s: storage failed: %s; it is tried again later", item.id, storage)

    async def _keep_leases(self, working: dict[str, DeliveryItem]) -> None:
        """Renew the leases of the rows still being worked on, every third of the lease, so that a call or
        a post that takes longer than the lease is not leased again by another worker meanwhile."""
        while True:
            await anyio.sleep(self.deliveries.lease / 3)
            if not working:
                continue
            try:
                held = await self.deliveries.renew(list(working.values()))
            except ToolbridgeError as exc:  # a storage error: the next beat tries again
                logger.warning("delivery worker: could not renew leases: %s", exc)
                continue
            for lost in working.keys() - held:  # said once: the row is no longer this worker's to renew
                logger.warning("delivery %s: lease lost (another worker took it over)", lost)
                del working[lost]

    async def _process(self, client: httpx2.AsyncClient, item: DeliveryItem) -> None:
        subscription = self._service.subscriptions.get(item.subscription)
        event = await self._service.log.by_seq(item.event_seq)
        if subscription is None or event is None:
            why = "the subscription was removed" if subscription is None else "the event aged out"
            await self.deliveries.fail(item, {"detail": why})
            return
        if item.target == "webhook" and subscription.webhook is not None:
            await self._webhook(client, item, event, subscription.webhook)
        elif item.target == "tool" and subscription.tool is not None:
            await self._tool(item, event, subscription.tool)
        else:
            await self.deliveries.fail(item, {"detail": f"subscription has no {item.target} target now"})

    # -- webhooks -----------------------------------------------------------------------------------

    async def _webhook(
        self, client: httpx2.AsyncClient, item: DeliveryItem, event: Event, target: WebhookTarget
    ) -> None:
        if item.subscription in await self.deliveries.disabled():
            await self.deliveries.fail(
                item, {"detail": "the endpoint is disabled (it answered 410)"}, state="disabled"
            )
            return
        try:
            status = await self._post(client, item, event, target)
        except BadRequest as exc:  # the SSRF guard's: an address as written can never be reached
            if _as_written(target.url):
                await self.deliveries.fail(item, _error(exc, target))
                logger.error("subscription %s: %s", item.subscription, exc.message)
            else:  # a name that resolved to a private address: its DNS may change
                await self._failed(item, _error(exc, target))
            return
        except (httpx2.HTTPError, TimeoutError) as exc:
            await self._failed(item, _error(exc, target))
            return
        if 200 <= status < 300:
            await self.deliveries.succeed(item)
        elif status == 410:
            await self._gone(item, target)
        else:
            detail = f"the receiver answered {status}" + (
                " (redirects are not followed)" if 300 <= status < 400 else ""
            )
            await self._failed(item, {"detail": detail, "status": status})

    async def _post(
        self, client: httpx2.AsyncClient, item: DeliveryItem, event: Event, target: WebhookTarget
    ) -> int:
        guard = URLGuard(refusal=_GUARD_WORDS, allow_hosts=target.allow_hosts)
        body = webhook_body(event)
        request = client.build_request("POST", guard.check(target.url), content=body.encode())
        await guard.pin_request(request, self._resolver)
        secret = (await self._service.resolve(target.secret)).reveal()
        when = dt.datetime.fromtimestamp(int(self.deliveries.clock()), dt.UTC)
        request.headers.update(
            {
                "content-type": "application/json",
                "user-agent": "toolbridge-webhooks",
                "webhook-id": item.id,
                "webhook-timestamp": str(int(when.timestamp())),
                "webhook-signature": Webhook(secret).sign(item.id, when, body),
            }
        )
        with anyio.fail_after(target.timeout):
            response = await client.send(request)
            await response.aclose()
        return response.status_code

    async def _failed(self, item: DeliveryItem, error: Mapping[str, Any]) -> None:
        if not await self.deliveries.retry_later(item, error):
            logger.error(
                "delivery %s to %s failed for good after %d attempts",
                item.id,
                item.subscription,
                item.attempts,
            )
            await self._service.emit(
                "toolbridge.events",
                "toolbridge.delivery.failed",
                item.subscription,
                {"delivery_id": item.id, "attempts": item.attempts, "error": dict(error)},
            )

    async def _gone(self, item: DeliveryItem, target: WebhookTarget) -> None:
        reason = f"{_origin(target.url)} answered 410 Gone"
        await self.deliveries.fail(item, {"detail": reason, "status": 410}, state="disabled")
        await self.deliveries.disable(item.subscription, reason)
        logger.warning("webhook endpoint of subscription %s disabled: %s", item.subscription, reason)
        await self._service.emit(
            "toolbridge.events",
            "toolbridge.webhook.disabled",
            item.subscription,
            {"subscription": item.subscription, "reason": reason, "delivery_id": item.id},
        )

    # -- tool calls ---------------------------------------------------------------------------------

    async def _tool(self, item: DeliveryItem, event: Event, target: ToolTarget) -> None:
        hub = self._hub
        try:
            principal = await hub.agents.principal_for(f"agent:{target.principal}")
            arguments = render(target.arguments, event)
            await hub.call(principal, target.name, arguments, idempotency_key=f"event-{item.id}")
        except KeyInFlight as exc:  # an earlier lease's call of this delivery still runs: its key replays it
            await self.deliveries.retry_later(item, problem(exc), after=exc.retry_after)
            return
        except UpstreamError as exc:
            if hub.safe_to_repeat(target.name):  # else the stored outcome stands
                await hub.idempotency.forget(principal.id, f"event-{item.id}")  # the retry really calls
            await self._failed(item, problem(exc))
            return
        except ToolbridgeError as exc:  # the call is wrong (scope, arguments, tool gone): it cannot succeed
            await self.deliveries.fail(item, problem(exc))
            return
        await self.deliveries.succeed(item)


def _as_written(url: str) -> bool:
    """Whether the URL's host is an IP address (or its port or scheme is refused whatever DNS says, or
    its port cannot even be read: ``http://%5B::1%5D/``)."""
    parts = urlsplit(url)
    try:
        ipaddress.ip_address((parts.hostname or "").strip("[]"))
    except ValueError:
        try:
            port = parts.port
        except ValueError:
            return True
        return parts.scheme not in ("http", "https") or port not in (None, 80, 443)
    return True


def _origin(url: str) -> str:
    parsed = httpx2.URL(url)
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def _error(exc: Exception, target: WebhookTarget) -> dict[str, Any]:
    if isinstance(exc, TimeoutError | httpx2.TimeoutException):
        return {"detail": f"no answer within {target.timeout:g} s"}
    if isinstance(exc, BadRequest):
        return {"detail": exc.message}
    return {"detail": f"{type(exc).__name__}: {exc}"}
