"""The event service: inbound sources, the log, subscriptions and what agents may read.

``receive`` is the whole inbound path after the HTTP edge: verify (raw bytes) → record durably (with
deduplication and the planned outbound deliveries, one transaction) → acknowledge. Processing — outbound
webhooks, tool calls — happens later, in the worker, from the ``event_deliveries`` rows.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    InvalidArguments,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from toolbridge.events._deliveries import Deliveries
from toolbridge.events._log import EventLog, Recorded
from toolbridge.events._model import Event, EventFilter, NewEvent
from toolbridge.events._verify import Verifier, dig

if TYPE_CHECKING:
    from toolbridge.credentials import Secret
    from toolbridge.events._triggers import TriggerRunner
    from toolbridge.policy import Principal

__all__ = ["EventService", "Receipt", "Source", "Subscription", "ToolTarget", "WebhookTarget", "render"]


logger = logging.getLogger("toolbridge.events")
_NOTICE_QUEUE = 1000
_DRAIN_SECONDS = 5.0

Resolve = Callable[[str], Awaitable["Secret"]]
"""A secret reference (``env:``, ``file:``, ``vault:``) → the secret."""


@dataclass(frozen=True, slots=True)
class Source:
    """An inbound webhook source, received at ``POST /hooks/<name>``: its verifier is made from its
    secrets (references, resolved on first use; two during a rotation)."""

    name: str
    kind: str
    secrets: tuple[str, ...]
    make: Callable[[Sequence[str]], Verifier]
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    url: str
    secret: str
    """Reference to the Standard Webhooks secret."""
    allow_hosts: frozenset[str] = frozenset()
    timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class ToolTarget:
    name: str
    arguments: Mapping[str, Any]
    principal: str


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    match: EventFilter
    principals: tuple[str, ...] = ()
    webhook: WebhookTarget | None = None
    tool: ToolTarget | None = None

    def targets(self) -> list[str]:
        return [t for t, on in (("webhook", self.webhook), ("tool", self.tool)) if on is not None]


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer to an inbound delivery."""

    event: Event | None
    duplicate: bool = False
    challenge: str | None = None


class EventService:
    def __init__(
        self,
        log: EventLog,
        *,
        sources: Mapping[str, Source] | None = None,
        subscriptions: Mapping[str, Subscription] | None = None,
        resolve: Resolve | None = None,
        deliveries: Deliveries | None = None,
    ) -> None:
        self.log = log
        self.deliveries = deliveries
        self.triggers: TriggerRunner | None = None
        """Poll triggers, run by the delivery worker."""
        self.resolve = resolve or _static
        self._verifiers: dict[str, Verifier] = {}
        self.sources = dict(sources or {})
        self.subscriptions = dict(subscriptions or {})
        self.counters: Counter[str] = Counter()
        """``accepted``, ``duplicate``, ``rejected.<status>`` per source: ``<source>:<what>``."""
        log.fanout = self._fanout
        self._notices: MemoryObjectSendStream[NewEvent] | None = None
        self._group: TaskGroup | None = None

    def _fanout(self, event: Event) -> list[tuple[str, str]]:
        return [
            (s.name, target)
            for s in self.subscriptions.values()
            if s.match.matches(event)
            for target in s.targets()
        ]

    # -- inbound ------------------------------------------------------------------------------------

    def source(self, name: str) -> Source:
        found = self.sources.get(name)
        if found is None:
            raise NotFound(f"no webhook source {name!r}", hint="declare it under 'hooks:' in toolbridge.yaml")
        return found

    async def receive(self, name: str, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and record one delivery; refusals are counted and raised, nothing is stored."""
        source = self.source(name)
        try:
            if len(body) > source.max_body_bytes:
                raise PayloadTooLarge("the delivery", size=len(body), limit=source.max_body_bytes)
            verifier = await self.verifier(source)
            delivery = verifier.verify(body, headers, self.log.clock())
        except (AuthenticationError, BadRequest, PayloadTooLarge) as exc:
            self.counters[f"{name}:rejected.{exc.status}"] += 1
            raise
        if delivery.challenge is not None:
            return Receipt(None, challenge=delivery.challenge)
        new = NewEvent(name, delivery.type, delivery.subject, delivery.payload, delivery.delivery_id)
        recorded = await self.log.append(new)
        self.counters[f"{name}:{'duplicate' if recorded.duplicate else 'accepted'}"] += 1
        return Receipt(recorded.event, duplicate=recorded.duplicate)

    async def verifier(self, source: Source) -> Verifier:
        found = self._verifiers.get(source.name)
        if found is None:
            current, *previous = source.secrets
            keys = [(await self.resolve(current)).reveal()]
            for ref in previous:  # one being rotated out: without it, deliveries signed anew still pass
                try:
                    keys.append((await self.resolve(ref)).reveal())
                except (ConfigurationError, NotFound) as exc:  # it made every delivery a 500, signed or not
                    logger.warning("hook %s: its previous secret %s is left out: %s", source.name, ref, exc)
            found = self._verifiers[source.name] = source.make(keys)
        return found

    def reject_oversized(self, name: str, size: int) -> PayloadTooLarge:
        """The 413 for a body known (from its length) to be over the source's cap, counted."""
        source = self.source(name)
        self.counters[f"{name}:rejected.413"] += 1
        return PayloadTooLarge("the delivery", size=size, limit=source.max_body_bytes)

    # -- internal events ----------------------------------------------------------------------------

    async def __aenter__(self) -> EventService:
        send, receive = anyio.create_memory_object_stream[NewEvent](_NOTICE_QUEUE)
        self._notices = send
        self._group = await anyio.create_task_group().__aenter__()
        self._group.start_soon(self._record_notices, receive)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._notices is not None:
            self._notices.close()  # the recorder drains what is queued, then ends
            self._notices = None
        if self._group is not None:
            group, self._group = self._group, None
            group.cancel_scope.deadline = anyio.current_time() + _DRAIN_SECONDS  # bounded drain
            await group.__aexit__(None, None, None)
            if group.cancel_scope.cancelled_caught:
                logger.warning("internal events still queued at shutdown were not recorded")

    def notice(
        self, source: str, type: str, subject: str | None, payload: Any, *, once: str | None = None
    ) -> None:
        """Queue an internal event (from synchronous code); ``once`` deduplicates like a delivery id."""
        if self._notices is None:
            logger.info("internal event %s for %s not recorded: the hub is not running", type, subject)
            return
        try:
            self._notices.send_nowait(NewEvent(source, type, subject, payload, once))
        except anyio.WouldBlock:
            logger.warning("internal events are backed up; dropped %s for %s", type, subject)

    async def _record_notices(self, receive: MemoryObjectReceiveStream[NewEvent]) -> None:
        async with receive:
            async for new in receive:
                try:
                    await self.log.append(new)
                except StorageError:
                    logger.exception("could not record internal event %s", new.type)

    async def emit(self, source: str, type: str, subject: str | None, payload: Any) -> Recorded:
        """Record an event toolbridge itself observed (``source`` is ``toolbridge.<area>``)."""
        return await self.log.append(NewEvent(source, type, subject, payload))

    async def replay(self, event_id: str, subscription: str | None = None) -> list[str]:
        """Deliver a recorded event again: to ``subscription`` (even if it would not match now) or to every
        subscription that matches it; returns the new delivery ids."""
        event = await self.log.get(event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}", hint="list recent ones with 'toolbridge events tail'")
        if subscription is not None:
            sub = self.subscriptions.get(subscription)
            if sub is None:
                raise NotFound(
                    f"no subscription {subscription!r}",
                    hint=f"choose one of: {', '.join(self.subscriptions) or 'none'}",
                )
            planned = [(sub.name, t) for t in sub.targets()]
        else:
            planned = self._fanout(event)
        return await self.log.replan(event, planned)

    async def announce(self, updated: Callable[[str], None], *, every: float = 1.0) -> None:
        """Call ``updated(subscription)`` for every event recorded from now on that the subscription
        matches: at once for events this process records, within ``every`` seconds for other processes'
        (read from the log). Runs until cancelled; it tells that something arrived, readers fetch it."""
        told: set[int] = set()

        def local(event: Event) -> None:
            told.add(event.seq)
            self._announce(event, updated)

        self.log.listeners.append(local)
        try:
            cursor = await self._head(every)
            while True:
                payloads = any(s.match.where for s in self.subscriptions.values())  # else never looked at
                try:
                    found, cursor = await self.log.after(cursor, limit=500, payloads=payloads)
                except StorageError:
                    logger.warning("could not read the event log to announce new events; trying again")
                    found = []
                for event in found:
                    if event.seq not in told:
                        self._announce(event, updated)
                told.difference_update([seq for seq in told if seq <= cursor])
                if len(found) < 500:
                    await anyio.sleep(every)
        finally:
            self.log.listeners.remove(local)

    def _announce(self, event: Event, updated: Callable[[str], None]) -> None:
        for sub in self.subscriptions.values():
            if sub.match.matches(event):
                updated(sub.name)

    async def _head(self, every: float) -> int:
        while True:
            try:
                return await self.log.head()
            except StorageError:
                logger.warning("could not read the event log's head; trying again")
                await anyio.sleep(every)

    # -- what agents may read -----------------------------------------------------------------------

    def readable(self, principal: Principal) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if _may_read(principal, s)]

    def subscription_for(self, principal: Principal, name: str) -> Subscription:
        """``name``, if ``principal`` may read it; else NotFound (a hidden one looks like a missing one)."""
        found = self.subscriptions.get(name)
        if found is None or not _may_read(principal, found):
            readable = ", ".join(s.name for s in self.readable(principal)) or "none"
            raise NotFound(f"no subscription {name!r} of yours", hint=f"your subscriptions: {readable}")
        return found

    async def poll(
        self,
        principal: Principal,
        subscription: str,
        cursor: int | None,
        *,
        limit: int = 50,
        wait: float = 0.0,
    ) -> dict[str, Any]:
        """Events of ``subscription`` after ``cursor`` (None: from now on), waiting up to ``wait`` s."""
        sub = self.subscription_for(principal, subscription)
        if cursor is None:
            cursor = await self.log.head()
        elif cursor > 0 and cursor > (newest := await self.log.newest()) > 0:
            raise cursor_ahead(cursor, newest, "event", "subscription")
        found, cursor = await self.log.wait(cursor, match=sub.match, limit=limit, seconds=wait)
        return {"events": [e.as_dict() for e in found], "cursor": cursor}


def cursor_ahead(cursor: int, newest: int, entry: str, feed: str) -> InvalidArguments:
    """A cursor past the newest entry was not given by this feed (one from another list, or made up):
    answered as it stood, it read as "nothing new" on every later read, and what came before it was
    never seen."""
    said = f"cursor {cursor} is past the newest {entry} ({newest}): not a cursor this {feed} gave"
    return InvalidArguments(
        said,
        errors=[{"field": "cursor", "error": said}],
        hint="pass the cursor your last read returned; 0 reads from the first entry kept, no cursor from now",
    )


def _may_read(principal: Principal, subscription: Subscription) -> bool:
    """The in-process caller reads everything; an agent reads the subscriptions that name it."""
    return principal.kind == "local" or bool({principal.name, principal.id} & set(subscription.principals))


async def _static(ref: str) -> Secret:
    from toolbridge.credentials import SecretRef, resolve_reference

    return await resolve_reference(SecretRef.parse(ref))


_PLACEHOLDER = re.compile(r"\{(event|payload)\.([A-Za-z0-9_.-]+)\}")


def render(arguments: Any, event: Event) -> Any:
    """``arguments`` with ``{event.<field>}`` and ``{payload.<path>}`` filled from ``event``; a string that
    is one placeholder keeps the value's JSON type."""
    if isinstance(arguments, Mapping):
        return {k: render(v, event) for k, v in arguments.items()}
    if isinstance(arguments, list):
        return [render(v, event) for v in arguments]
    if not isinstance(arguments, str):
        return arguments
    whole = _PLACEHOLDER.fullmatch(arguments)
    if whole is not None:
        return _lookup(event, whole.group(1), whole.group(2))
    return _PLACEHOLDER.sub(lambda m: _text(_lookup(event, m.group(1), m.group(2))), arguments)


def _lookup(event: Event, root: str, path: str) -> Any:
    return dig(event.as_dict() if root == "event" else event.payload, path)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
