"""Upstream events, told to the agents that can see them: list changes, log messages, resource updates.

The hub's :class:`~toolbridge.connectors._events.EventBus` carries what connectors report; a
:class:`Notifier` delivers it to connected MCP clients, each event only to the agents that may see the
connector it came from (the rule of ``_federation``: at least one of its tools is visible to them).

- **Handshake era (2025-11-25) and stdio**: every request records its client connection (a *peer*).
  Events go on the connection's standalone channel (the GET stream over HTTP, stdout over stdio):
  ``notifications/{tools,prompts,resources}/list_changed``, ``notifications/message`` at or above the
  level the client set with ``logging/setLevel`` (``warning`` until it does), and
  ``notifications/resources/updated`` for the URIs it subscribed to with ``resources/subscribe``.
- **Event subscriptions** (``toolbridge://events/<name>``, see ``_events``): the event service announces
  every recorded event its subscriptions match (at once in this process, within a second from others);
  it travels as a resource update of the ``events`` connector, to the clients that subscribed to it.
- **Stateless era (2026-07-28)**: ``subscriptions/listen`` streams, served by the SDK's
  :class:`~mcp.server.subscriptions.ListenHandler` over a per-agent view of the events. Logging is
  per request in that era and an upstream log line belongs to no request, so none is forwarded.

A tools change is told to an agent only when the tools *it* sees changed. Delivery runs in one task of
its own, bounded per client, so a slow or vanished client never holds up a connector or another agent.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from toolbridge.audit import canonical_json
from toolbridge.connectors._events import LOG_LEVELS, HubEvent, ListChanged, LogMessage
from toolbridge.connectors._events import ResourceUpdated as UpstreamResourceUpdated
from toolbridge.connectors.mcp import McpConnector
from toolbridge.errors import ToolbridgeError, UpstreamTimeout
from toolbridge.surfaces.mcp._bridge import CallContext
from toolbridge.surfaces.mcp._events import event_uri, is_event_uri, readable_subscription, serves_events
from toolbridge.surfaces.mcp._wire import INVALID_PARAMS, protocol_error

if TYPE_CHECKING:
    from mcp.server.session import ServerSession

    from toolbridge import Hub, Principal
    from toolbridge.catalog import Tool

__all__ = ["DEFAULT_LOG_LEVEL", "Notifier"]

logger = logging.getLogger("toolbridge.surfaces.mcp")

DEFAULT_LOG_LEVEL = "warning"
"""Upstream log messages below this level are not forwarded until the client sets a level."""
_SEND_TIMEOUT = 2.0
EVENTS_CONNECTOR = "events"
"""The connector of the ``events.*`` tools: agents that see it are told of their event resources."""
_STDIO_PEER = "stdio"
ContextOf = Callable[[ServerRequestContext[Any, Any]], CallContext]
_LISTENER: ContextVar[Principal | None] = ContextVar("toolbridge_listen_principal", default=None)
_LIST_EVENTS: Mapping[str, ServerEvent] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}
_NOTIFICATIONS: Mapping[str, Callable[[], types.ServerNotification]] = {
    "tools": types.ToolListChangedNotification,
    "prompts": types.PromptListChangedNotification,
    "resources": types.ResourceListChangedNotification,
}


@dataclass(slots=True)
class _Peer:
    """A handshake-era client connection: whose it is, how to reach it, what it asked for."""

    principal: Principal
    session: ServerSession
    level: int = LOG_LEVELS.index(DEFAULT_LOG_LEVEL)
    uris: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Listener:
    principal: Principal
    deliver: Callable[[ServerEvent], None]


class Notifier:
    """Delivers the hub's upstream events to MCP clients (see the module docstring).

    Wire it into a low-level ``Server`` with :meth:`install`, and run it (``async with notifier.running()``)
    for as long as the server serves. ``max_peers`` bounds the connections remembered (the oldest is
    forgotten first; a forgotten client that sends another request is remembered again).
    """

    def __init__(self, hub: Hub, context_of: ContextOf, *, max_peers: int = 10_000) -> None:
        self.hub = hub
        self._context_of = context_of
        self._max_peers = max_peers
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._listeners: dict[object, _Listener] = {}
        self._listen = ListenHandler(self)  # this object is the SDK's SubscriptionBus, per agent
        self._subscribed: dict[str, int] = {}
        self._uri_locks: dict[str, anyio.Lock] = {}
        """URI → how many peers subscribed to it (the upstream is subscribed while any is)."""
        self._seen: dict[str, frozenset[Any]] = {}
        """Principal id → the tool names it saw when last told (a tools change is told when this changes)."""
        self._queue: MemoryObjectSendStream[HubEvent] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self.delivered = 0
        """Notifications handed to clients (for tests and diagnostics)."""

    # -- wiring ------------------------------------------------------------------------------------

    def install(self, server: Any) -> None:
        """Record peers on every request and serve setLevel, subscribe/unsubscribe and listen."""
        server.middleware.append(self._track)
        server.add_request_handler(
            "subscriptions/listen", types.SubscriptionsListenRequestParams, self._on_listen
        )
        federates = bool(self._mcp_connectors())
        if federates:
            server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)
        if federates or serves_events(self.hub):
            server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self._subscribe)
            server.add_request_handler(
                "resources/unsubscribe", types.UnsubscribeRequestParams, self._unsubscribe
            )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Notifier]:
        send, receive = anyio.create_memory_object_stream[HubEvent](1024)
        self._queue = send
        unsubscribe = self.hub.events.subscribe(self._enqueue)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._deliver_all, receive)
                if serves_events(self.hub) and self.hub.event_service is not None:
                    tg.start_soon(self.hub.event_service.announce, self._event_recorded)
                try:
                    yield self
                finally:
                    tg.cancel_scope.cancel()
        finally:
            unsubscribe()
            self._queue = self._tg = None
            send.close()
            self._listen.close()

    def forget(self, session_id: str, *, by: Principal | None = None) -> None:
        """The client ended the session (HTTP DELETE, ``by`` its owner): stop telling it anything."""
        peer = self._peers.get(session_id)
        if peer is not None and (by is None or by.id == peer.principal.id):
            del self._peers[session_id]
            for uri in list(peer.uris):
                self._release(uri)

    # -- the SDK's SubscriptionBus, seen by one agent's listen stream -------------------------------

    async def publish(self, event: ServerEvent) -> None:  # part of the bus protocol; events come from the hub
        raise NotImplementedError("toolbridge publishes through the hub's event bus")

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        principal = _LISTENER.get()
        if principal is None:  # only our listen wrapper subscribes, with the principal set
            raise RuntimeError("a listen stream subscribed without a principal")
        token = object()
        self._note_view(principal)
        self._listeners[token] = _Listener(principal, listener)

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    # -- handlers ----------------------------------------------------------------------------------

    async def _track(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        key = _peer_key(ctx)
        if key is not None and ctx.request_id is not None:
            peer = self._peers.get(key)
            if peer is None:
                self._remember(key, _Peer(self._context_of(ctx).principal, ctx.session))
            else:
                peer.session = ctx.session
                self._peers.move_to_end(key)
        return await call_next(ctx)

    def _note_view(self, principal: Principal) -> None:
        if principal.id not in self._seen:
            self._seen[principal.id] = _view(self.hub.list_tools(principal))

    def _remember(self, key: str, peer: _Peer) -> None:
        self._note_view(peer.principal)
        self._peers[key] = peer
        while len(self._peers) > self._max_peers:
            _, old = self._peers.popitem(last=False)
            for uri in list(old.uris):
                self._release(uri)

    def _peer(self, ctx: ServerRequestContext[Any, Any]) -> _Peer:
        key = _peer_key(ctx)
        peer = self._peers.get(key) if key is not None else None
        if peer is None:
            raise MCPError(INVALID_PARAMS, f"{ctx.method} needs a session (initialize first)")
        return peer

    def session_of(self, key: str) -> ServerSession | None:
        """The SDK session of the handshake-era connection ``key`` (``http:<session id>``), if it is
        remembered; it counts as a request of that connection (the oldest are forgotten first)."""
        peer = self._peers.get(key)
        if peer is None:
            return None
        self._peers.move_to_end(key)
        return peer.session

    def level_of(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """The least severe log level a handshake-era client wants (None: not such a client)."""
        key = _peer_key(ctx)
        peer = self._peers.get(key) if key is not None else None
        return LOG_LEVELS[peer.level] if peer is not None else None

    async def _set_level(
        self, ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> Any:
        self._peer(ctx).level = LOG_LEVELS.index(params.level)
        return types.EmptyResult()

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> Any:
        peer = self._peer(ctx)
        uri = str(params.uri)
        owner = self._owner(peer.principal, uri)
        where = EVENTS_CONNECTOR if owner is None else owner.name
        async with self._performed(ctx, f"resources/subscribe {where}", uri):
            if uri not in peer.uris:
                await self._hold(owner, uri)
                if self._peers.get(_peer_key(ctx) or "") is not peer:  # forgotten while subscribing upstream
                    self._release(uri)
                    raise MCPError(INVALID_PARAMS, "the session ended while subscribing")
                peer.uris.add(uri)
        return types.EmptyResult()

    def _performed(
        self, ctx: ServerRequestContext[Any, Any], action: str, uri: str
    ) -> AbstractAsyncContextManager[Any]:
        """A (un)subscription as the agent's action through ``Hub.perform``: rate-limited, audited once
        (the URI digested, never stored)."""
        caller = self._context_of(ctx)
        return self.hub.perform(
            caller.principal, action, {"uri": uri}, scope=None, request_id=caller.request_id
        )

    async def _hold(self, owner: McpConnector | None, uri: str) -> None:
        """Count one more holder of ``uri``; the first one subscribes the upstream.

        Serialized per URI: a holder counts only once the upstream subscription exists, so one that
        fails (or is cancelled) takes nobody else's subscription with it.
        """
        lock = self._uri_locks.setdefault(uri, anyio.Lock())
        async with lock:
            if self._subscribed.get(uri, 0) == 0 and owner is not None:
                await self._upstream(owner.subscribe_resource(uri, deadline=self._deadline()))
            self._subscribed[uri] = self._subscribed.get(uri, 0) + 1

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> Any:
        peer = self._peer(ctx)
        uri = str(params.uri)
        async with self._performed(ctx, "resources/unsubscribe", uri):
            if uri in peer.uris:
                peer.uris.discard(uri)
                self._release(uri)
        return types.EmptyResult()

    async def _on_listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> Any:
        principal = self._context_of(ctx).principal
        uris = list(params.notifications.resource_subscriptions or ())
        owners = [(uri, self._owner(principal, uri)) for uri in uris]
        held: list[str] = []
        token = _LISTENER.set(principal)
        try:
            for uri, owner in owners:
                await self._hold(owner, uri)
                held.append(uri)
            return await self._listen(ctx, params)
        finally:
            _LISTENER.reset(token)
            for uri in held:
                self._release(uri)

    def _owner(self, principal: Principal, uri: str) -> McpConnector | None:
        """The upstream that serves ``uri`` to ``principal`` (None: an event resource it may read)."""
        if is_event_uri(uri) and self.hub.event_service is not None:
            readable_subscription(self.hub.event_service, principal, uri)
            return None
        owner = next((c for c in self._visible(principal) if c.extras.owns(uri)), None)
        if owner is None:
            raise MCPError(-32002, f"no resource {uri!r}; list them with resources/list")
        return owner

    def _release(self, uri: str) -> None:
        left = self._subscribed.get(uri, 0) - 1
        if left > 0:
            self._subscribed[uri] = left
            return
        self._subscribed.pop(uri, None)
        owner = next((c for c in self._mcp_connectors() if c.extras.owns(uri)), None)
        if owner is not None and self._tg is not None:
            self._tg.start_soon(self._unsubscribe_unheld, owner, uri)

    async def _unsubscribe_unheld(self, owner: McpConnector, uri: str) -> None:
        """Unsubscribe the upstream from ``uri`` unless someone subscribed again meanwhile."""
        lock = self._uri_locks.setdefault(uri, anyio.Lock())
        async with lock:
            if self._subscribed.get(uri, 0) == 0:
                with anyio.move_on_after(self._timeout):
                    await _quietly(owner.unsubscribe_resource, uri)
        if self._subscribed.get(uri, 0) == 0 and not lock.locked():
            self._uri_locks.pop(uri, None)

    @property
    def _timeout(self) -> float:
        return self.hub.limits.call_timeout

    def _deadline(self) -> float:
        return anyio.current_time() + self.hub.limits.call_timeout

    async def _upstream(self, work: Any) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await work
        except TimeoutError as exc:
            timeout = UpstreamTimeout(
                f"the upstream did not answer the subscription within {self._timeout:g} s"
            )
            error = protocol_error(timeout)
            raise MCPError(error.code, error.message, error.data) from exc
        except ToolbridgeError as exc:
            error = protocol_error(exc)
            raise MCPError(error.code, error.message, error.data) from exc

    # -- delivery ----------------------------------------------------------------------------------

    def _event_recorded(self, subscription: str) -> None:
        self._enqueue(UpstreamResourceUpdated(EVENTS_CONNECTOR, event_uri(subscription)))

    def _enqueue(self, event: HubEvent) -> None:
        if self._queue is None:
            return
        try:
            self._queue.send_nowait(event)
        except anyio.WouldBlock:
            logger.warning("MCP notifications are backed up; dropped %r", event)

    async def _deliver_all(self, receive: anyio.abc.ObjectReceiveStream[HubEvent]) -> None:
        async with receive:
            async for event in receive:
                try:
                    await self._deliver(event)
                except Exception:  # one bad event must not end delivery for every client
                    logger.exception("could not deliver %r to MCP clients", event)

    async def _deliver(self, event: HubEvent) -> None:
        views: dict[str, frozenset[Any]] = {}

        def tools_of(principal: Principal) -> frozenset[Any]:
            if principal.id not in views:
                views[principal.id] = _view(self.hub.list_tools(principal))
            return views[principal.id]

        def sees(principal: Principal) -> bool:
            return any(tool.connector == event.connector for tool in self.hub.list_tools(principal))

        audience = sees
        if isinstance(event, ListChanged) and event.kind == "tools":
            holders: list[_Peer | _Listener] = [*self._peers.values(), *self._listeners.values()]
            principals = {h.principal.id: h.principal for h in holders}
            changed = set()
            for pid, principal in principals.items():
                now = tools_of(principal)
                if self._seen.get(pid) != now:
                    self._seen[pid] = now
                    changed.add(pid)

            def audience(principal: Principal) -> bool:
                return principal.id in changed

        for listener in list(self._listeners.values()):
            if audience(listener.principal):
                wire = _server_event(event)
                if wire is not None:
                    listener.deliver(wire)
                    self.delivered += 1
        for key, peer in list(self._peers.items()):
            if audience(peer.principal):
                await self._tell(key, peer, event)

    async def _tell(self, key: str, peer: _Peer, event: HubEvent) -> None:
        notification: types.ServerNotification
        if isinstance(event, ListChanged):
            notification = _NOTIFICATIONS[event.kind]()
        elif isinstance(event, LogMessage):
            if LOG_LEVELS.index(event.level) < peer.level:
                return
            notification = types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(
                    level=event.level,  # one of LOG_LEVELS, checked by the connector
                    data=event.data,
                    logger=event.connector if event.logger is None else f"{event.connector}.{event.logger}",
                )
            )
        else:
            if event.uri not in peer.uris:
                return
            notification = types.ResourceUpdatedNotification(
                params=types.ResourceUpdatedNotificationParams(uri=event.uri)
            )
        with anyio.move_on_after(_SEND_TIMEOUT) as scope:
            try:
                await peer.session.send_notification(notification)
                self.delivered += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.forget(key)
        if scope.cancelled_caught:
            logger.warning(
                "an MCP client did not take a notification within %g s; forgetting it", _SEND_TIMEOUT
            )
            self.forget(key)

    def _visible(self, principal: Principal) -> list[McpConnector]:
        seen = {tool.connector for tool in self.hub.list_tools(principal)}
        return [c for c in self._mcp_connectors() if c.name in seen]

    def _mcp_connectors(self) -> list[McpConnector]:
        found = [self.hub.connector(name) for name in self.hub.connector_names()]
        return [c for c in found if isinstance(c, McpConnector)]


def _view(tools: list[Tool]) -> frozenset[Any]:
    """What an agent sees of its tools: each one's name and definition (a changed schema is a change)."""
    return frozenset((t.name, t.title, t.description, canonical_json(t.input_schema)) for t in tools)


def _peer_key(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The handshake-era connection a request came on (None: stateless era, or not yet a session)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    request = ctx.request
    if request is None:
        return _STDIO_PEER
    headers = getattr(request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    return f"http:{session_id}" if session_id else None


def _server_event(event: HubEvent) -> ServerEvent | None:
    if isinstance(event, ListChanged):
        return _LIST_EVENTS[event.kind]
    if isinstance(event, UpstreamResourceUpdated):
        return ResourceUpdated(event.uri)
    return None  # log messages travel on requests in the stateless era


async def _quietly(work: Callable[[str], Any], uri: str) -> None:
    try:
        await work(uri)
    except (ToolbridgeError, OSError) as exc:
        logger.info("could not unsubscribe from %s upstream: %s", uri, exc)
