"""What connectors report besides results: call progress, and upstream events for connected agents.

Two channels, both free of any transport:

- :data:`CALL_EVENTS` — per call. A surface that can deliver progress to its client (MCP, when the
  client sent a progress token), or put an upstream's requests to it (an MCP agent), sets it around
  ``Hub.call``; a connector whose upstream reports progress or asks the caller something (an upstream
  MCP server's ``elicitation/create``, ``sampling/createMessage``, ``roots/list``) reads it.
- :class:`EventBus` — per hub. A connector emits :class:`ListChanged`, :class:`LogMessage` and
  :class:`ResourceUpdated` when its upstream says so; surfaces subscribe and tell the agents that can
  see that connector (the MCP surface: ``notifications/*/list_changed``, ``notifications/message``,
  ``notifications/resources/updated``).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CALL_EVENTS",
    "Ask",
    "CallEvents",
    "EventBus",
    "HubEvent",
    "HubLink",
    "ListChanged",
    "LogMessage",
    "LogSink",
    "Progress",
    "ReportsToHub",
    "ResourceUpdated",
]

logger = logging.getLogger("toolbridge.events")

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
"""``(progress, total, message)``: report how far the call has come."""


Ask = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
"""``(method, params)``: put an upstream's request (``elicitation/create``, ``sampling/createMessage``,
``roots/list``) to the caller; returns the members of the JSON-RPC answer, ``{"result": …}`` or
``{"error": …}`` (also when the caller cannot be asked: the error says why). Never raises."""


LogSink = Callable[[str, Any, "str | None"], Awaitable[None]]
"""``(level, data, logger)``: a log message the upstream sent about this call, for its caller."""


@dataclass(frozen=True, slots=True)
class CallEvents:
    progress: Progress | None = None
    """Where the upstream's progress goes (None: the caller asked for none)."""
    ask: Ask | None = None
    """How the upstream's requests reach the caller (None: they cannot)."""
    capabilities: Mapping[str, Any] | None = None
    """What ``ask`` may put to the caller: its MCP client capabilities (``sampling``, ``elicitation``,
    ``roots``), told to a stateless-era upstream on the caller's behalf."""
    log: LogSink | None = None
    """Where a stateless-era upstream's log messages about this call go (None: nowhere)."""
    log_level: str | None = None
    """The least severe of them the caller wants (one of :data:`LOG_LEVELS`)."""


CALL_EVENTS: ContextVar[CallEvents | None] = ContextVar("toolbridge_call_events", default=None)

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities, ascending (MCP's ``LoggingLevel``)."""


@dataclass(frozen=True, slots=True)
class ListChanged:
    """The tools, prompts or resources of ``connector`` changed."""

    connector: str
    kind: Literal["tools", "prompts", "resources"]


@dataclass(frozen=True, slots=True)
class LogMessage:
    """A log message an upstream sent (``level`` is one of :data:`LOG_LEVELS`)."""

    connector: str
    level: str
    data: Any
    logger: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceUpdated:
    """A resource of ``connector`` that agents subscribed to changed."""

    connector: str
    uri: str


HubEvent = ListChanged | LogMessage | ResourceUpdated
Listener = Callable[[HubEvent], None]


@dataclass(frozen=True, slots=True)
class HubLink:
    """What a hub gives a connector that reports on its own (:meth:`ReportsToHub.attach`)."""

    emit: Listener
    """Upstream events, for the surfaces to forward to agents (the hub's :class:`EventBus`)."""
    tools_changed: Callable[[], None]
    """The connector's tool list or a tool's state changed: the hub reads its tools again."""


class ReportsToHub(abc.ABC):
    """A connector whose upstream tells it things between calls (an MCP server's notifications).

    ``Hub.add_connector`` calls :meth:`attach` with the hub's :class:`HubLink`, so a connector built by
    hand reports to the hub it is added to exactly as one built from ``toolbridge.yaml`` does; callbacks
    given to its constructor keep being called beside the hub's."""

    @abc.abstractmethod
    def attach(self, link: HubLink) -> None:
        """Report to the hub of ``link`` from now on (once: a connector belongs to one hub)."""


class EventBus:
    """In-process fan-out of :data:`HubEvent` values to synchronous listeners.

    Listeners must not block (they hand the event to a task of their own); one that raises is logged
    and skipped so it cannot starve the others or fail the connector that emitted.
    """

    def __init__(self) -> None:
        self._listeners: dict[object, Listener] = {}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns an idempotent unsubscribe callable."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def emit(self, event: HubEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:  # fan-out boundary: isolate listeners from each other and from the emitter
                logger.exception("an event listener failed on %r", event)
