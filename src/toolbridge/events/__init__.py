"""Events: verified webhooks in, a durable event log, subscriptions, signed webhooks out (docs/events.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolbridge._lazy import lazy_exports

if TYPE_CHECKING:
    from toolbridge.events._log import EventLog, Recorded
    from toolbridge.events._model import Event, EventFilter, NewEvent
    from toolbridge.events._service import (
        EventService,
        Receipt,
        Source,
        Subscription,
        ToolTarget,
        WebhookTarget,
        render,
    )
    from toolbridge.events._verify import (
        Delivery,
        Fields,
        GitHubVerifier,
        HmacScheme,
        HmacVerifier,
        SlackVerifier,
        StandardVerifier,
        StripeVerifier,
        Verifier,
    )

__all__ = [
    "Delivery",
    "Event",
    "EventFilter",
    "EventLog",
    "EventService",
    "Fields",
    "GitHubVerifier",
    "HmacScheme",
    "HmacVerifier",
    "NewEvent",
    "Receipt",
    "Recorded",
    "SlackVerifier",
    "Source",
    "StandardVerifier",
    "StripeVerifier",
    "Subscription",
    "ToolTarget",
    "Verifier",
    "WebhookTarget",
    "render",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    [
        "toolbridge.events._log",
        "toolbridge.events._model",
        "toolbridge.events._service",
        "toolbridge.events._verify",
    ],
    __all__,
    globals(),
)
