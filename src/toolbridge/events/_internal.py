"""Internal events: what toolbridge already observes, recorded in the event log.

* a circuit breaker changed state → ``toolbridge.breaker.open`` / ``.half_open`` / ``.closed``
  (source ``toolbridge.resilience``, subject: the connector);
* a connection needs a person to reconnect it → ``toolbridge.connection.reauth_required``
  (source ``toolbridge.credentials``, subject ``connector/account``);
* an outbox item failed for good → ``toolbridge.outbox.failed`` (source ``toolbridge.outbox``, subject: tool);
* a tool was quarantined (its upstream definition changed or awaits approval) →
  ``toolbridge.tool.quarantined`` (source ``toolbridge.catalog``, subject: the tool).

The hooks are synchronous; :meth:`EventService.notice` queues and a task of the service records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from toolbridge.catalog import QUARANTINE_META_KEY
from toolbridge.connectors._events import HubEvent, ListChanged, LogMessage

if TYPE_CHECKING:
    from toolbridge.credentials import Connection
    from toolbridge.events._service import EventService
    from toolbridge.hub import Hub
    from toolbridge.resilience._breaker import Transition

__all__ = ["breaker_notices", "reauth_notices", "watch_hub"]


def breaker_notices(service: EventService) -> Callable[[Transition], None]:
    """What a :class:`Resilience` is given as ``on_transition`` to record its breakers' transitions."""

    def transition(t: Transition) -> None:
        payload = {
            "connector": t.name,
            "from": t.old.value,
            "to": t.new.value,
            "failure_rate": t.failure_rate,
        }
        service.notice("toolbridge.resilience", f"toolbridge.breaker.{t.new.value}", t.name, payload)

    return transition


def reauth_notices(service: EventService) -> Callable[[Connection, str], None]:
    """What a :class:`CredentialManager` is given as ``on_reauth`` to record reconnect needs."""
    return lambda conn, reason: _reauth(service, conn, reason)


def watch_hub(hub: Hub, service: EventService) -> None:
    """Record ``hub``'s failed outbox items and quarantines (its breakers and credentials report through
    :func:`breaker_notices` and :func:`reauth_notices`, given to them when they were built)."""
    quarantined = {t.name for t in hub.catalog if QUARANTINE_META_KEY in t.meta}

    def on_event(event: HubEvent) -> None:
        if isinstance(event, LogMessage) and isinstance(event.data, Mapping):
            if event.data.get("event") == "outbox.failed":
                tool = str(event.data.get("tool") or "")
                service.notice("toolbridge.outbox", "toolbridge.outbox.failed", tool, dict(event.data))
        elif isinstance(event, ListChanged) and event.kind == "tools":
            now = {t.name: t for t in hub.catalog if QUARANTINE_META_KEY in t.meta}
            for name in sorted(set(now) - quarantined):
                info = now[name].meta[QUARANTINE_META_KEY]
                payload = {"tool": name, "connector": event.connector, "message": info.get("message")}
                once = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()
                service.notice("toolbridge.catalog", "toolbridge.tool.quarantined", name, payload, once=once)
            quarantined.clear()
            quarantined.update(now)

    hub.events.subscribe(on_event)


def _reauth(service: EventService, conn: Connection, reason: str) -> None:
    payload = {
        "connection": conn.id,
        "connector": conn.connector,
        "account": conn.account,
        "owner": conn.owner or None,  # per-user connections: every agent has its own 'default'
        "reason": reason,
    }
    subject = f"{conn.connector}/{conn.account}" + (f"/{conn.owner}" if conn.owner else "")
    service.notice("toolbridge.credentials", "toolbridge.connection.reauth_required", subject, payload)
