"""The MCP connector: an upstream MCP server's tools in the catalog, called over one pooled session.

One session per connector, shared by every call and every agent (a JSON-RPC session multiplexes
concurrent requests). It is opened when the hub starts, which is also when the tools are discovered.
A crashed process or broken connection is replaced on the next call (stdio servers restart with
backoff); an expired session (HTTP 404) is re-established and the request sent again, once.

Credentials (HTTP upstreams) are per request, not per session: each call's own connection (resolved by
the hub into ``Invocation.credentials``) signs each of its POSTs, passed down explicitly (``auth=``) to
the channel, as the OpenAPI connector passes it to httpx2 per request. Opening
the session, listing tools and reading prompts/resources use the connector's default connection
(``default_credentials``). An upstream 401 surfaces as ``UpstreamStatusError(401)``: the resilience layer
refreshes the connection once and retries. A call with another connection, in the handshake era or
over legacy SSE (where an upstream may bind a session to its opener), uses that connection's own
session from :attr:`McpConnector.pool` instead of the shared one (see ``_pool``).

HTTP upstreams speak streamable HTTP or the legacy HTTP+SSE transport (``_sse``); ``transport: auto``
tries the first and falls back to the second on 400/404/405, remembering what worked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
import httpx2
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER, mcp_param_headers
from mcp_types import LOG_LEVEL_META_KEY

from toolbridge._redact import forms, redact_error, redact_value
from toolbridge.catalog import Tool, quarantine_error
from toolbridge.connectors._base import Credentials, Invocation
from toolbridge.connectors._events import (
    CALL_EVENTS,
    CallEvents,
    HubEvent,
    HubLink,
    ListChanged,
    ReportsToHub,
)
from toolbridge.connectors._fastpath import FastTransport
from toolbridge.connectors._input import CALL_INPUT
from toolbridge.connectors.mcp._answers import call_value, own_answer, rpc_error
from toolbridge.connectors.mcp._catalog import Entry, ToolCatalog
from toolbridge.connectors.mcp._channel import SessionExpired
from toolbridge.connectors.mcp._client import tls_context, upstream_client
from toolbridge.connectors.mcp._config import Approval, HttpServer, StdioServer, ToolRules, Transport
from toolbridge.connectors.mcp._federation import Extras, FederatedRequests, discover_extras
from toolbridge.connectors.mcp._http import HttpChannel
from toolbridge.connectors.mcp._inbound import Inbound
from toolbridge.connectors.mcp._listen import Watched, listen_for_changes
from toolbridge.connectors.mcp._opener import Opener
from toolbridge.connectors.mcp._pins import PinStore, ToolReview
from toolbridge.connectors.mcp._pool import SessionPool
from toolbridge.connectors.mcp._restarts import RESTART_DELAYS, Restarts
from toolbridge.connectors.mcp._session import PROBE_TIMEOUT, RpcError, Session
from toolbridge.connectors.mcp._tasks import (
    CALL_TASK,
    TaskAsk,
    TaskListener,
    TaskRequests,
    created_task,
    without_tasks,
)
from toolbridge.connectors.mcp._uris import outward_content
from toolbridge.errors import ConfigurationError, ToolbridgeError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["McpConnector", "ToolReview"]

logger = logging.getLogger("toolbridge.connectors.mcp")


class McpConnector(FederatedRequests, TaskRequests, ReportsToHub):
    """Tools of one upstream MCP server (:class:`StdioServer` or :class:`HttpServer`).

    ``pins`` stores approved definitions; without it every tool is trusted as listed. With it, a tool is
    visible once approved (``approval="all-on-first-connect"`` approves what the first connection
    lists) and is quarantined when its definition later differs from the approved one.
    ``on_tools_changed`` is called when the tool list or a tool's state changed, ``on_event`` with the
    upstream's log messages, list changes and resource updates; the hub it is added to is told both
    through :meth:`attach` (no wiring needed for a hand-built hub).

    The jobs are split: :class:`~._catalog.ToolCatalog` (tools and pins), :class:`~._inbound.Inbound`
    (what the upstream sends on its own), :class:`~._opener.Opener` (transport and era negotiation),
    :class:`~._restarts.Restarts` (backoff), :class:`~._pool.SessionPool` (per-connection sessions);
    this class keeps the shared session alive and makes the requests.
    """

    def __init__(
        self,
        name: str,
        server: StdioServer | HttpServer,
        *,
        rules: ToolRules | None = None,
        pins: PinStore | None = None,
        approval: Approval = "manual",
        on_tools_changed: Callable[[], None] | None = None,
        client_name: str = "toolbridge",
        restart_delays: Sequence[float] = RESTART_DELAYS,
        default_credentials: Callable[[], Awaitable[Credentials | None]] | None = None,
        connection_env: Callable[[], Awaitable[Mapping[str, str]]] | None = None,
        on_event: Callable[[HubEvent], None] | None = None,
        session_pool: SessionPool | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
        prefixed: bool = True,
        transport: httpx2.AsyncBaseTransport | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        """``transport``: under the HTTP client of an HTTP upstream (``httpx2.MockTransport`` in tests);
        None: the fast path (``_fastpath``), or httpcore's when the server names a proxy or
        ``fast_path=False``; both honour the server's TLS settings. ``secrets``: the values of the
        server's ``headers`` and ``env`` that came from secret references, masked in what it sends back
        (a call's connection secrets are masked by the hub)."""
        self._name = name
        self._namespace = name if prefixed else ""
        self.server = server
        self._on_tools_changed = [on_tools_changed] if on_tools_changed is not None else []
        self._on_event = [on_event] if on_event is not None else []
        """Receive upstream log messages, prompt/resource list changes and resource updates: the
        constructor's callback, and the hub's once :meth:`attach` ran."""
        self._hub: HubLink | None = None
        self._default_credentials = default_credentials
        self._transport = transport
        self._catalog = ToolCatalog(
            name,
            namespace=self._namespace,
            rules=rules or ToolRules(),
            pins=pins,
            approval=approval,
            changed=self._tools_changed,
        )
        self._opener = self._build_upstream_parts(
            server,
            restart_delays=restart_delays,
            client_name=client_name,
            probe_timeout=probe_timeout,
            connection_env=connection_env,
            secrets=secrets,
        )
        self.extras = Extras()
        """Prompts and resources the upstream offers (see ``_federation``)."""
        self.pool = session_pool if session_pool is not None else SessionPool()
        """Sessions of the connections other than the default one (handshake era and legacy SSE)."""
        self._init_default_session()

    def _init_default_session(self) -> None:
        """The state of the default connection's session (none open yet)."""
        self._session: Session | None = None
        self._lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._listening: dict[int, anyio.CancelScope] = {}
        """Session (by id) → the scope of its listen loop (stateless-era upstreams)."""
        self._default_connection: str | None = None
        self._stateless = False

    def _build_upstream_parts(
        self,
        server: StdioServer | HttpServer,
        *,
        restart_delays: Sequence[float],
        client_name: str,
        probe_timeout: float,
        connection_env: Callable[[], Awaitable[Mapping[str, str]]] | None,
        secrets: Sequence[str],
    ) -> Opener:
        """Build what listens to the upstream (:class:`Watched`, :class:`Inbound`, which masks ``secrets``
        in logs and notifications too), the restart backoff, and the :class:`Opener` that opens sessions
        with them."""
        self._watched = Watched()
        self._unlisted: set[str] = set()
        """Optional list methods the upstream answered with an error (logged once each)."""
        self._task_listeners: list[TaskListener] = []
        self._inbound = Inbound(
            self._name,
            namespace=self._namespace,
            emit=self._emit,
            relist=self._relist,
            acknowledged=self._watched.acknowledge,
            task_status=self._task_status,
        )
        self._static_secrets = forms(secrets)
        self._inbound.learn_secrets("static", self._static_secrets)
        self._restarts = Restarts(self._name, restart_delays)
        return Opener(
            self._name,
            server,
            restarts=self._restarts,
            on_message=self._inbound.on_message,
            client_info={"name": client_name, "version": "1"},
            probe_timeout=probe_timeout,
            connection_env=connection_env,
            learn_secrets=self._inbound.learn_secrets,
            secret_forms=lambda: self._inbound.secret_forms,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def transport(self) -> Transport | None:
        """How an HTTP upstream is spoken to; under ``auto``, what worked (``auto`` until something did)."""
        return None if isinstance(self.server, StdioServer) else self._opener.transport

    @property
    def sessions_opened(self) -> int:
        """How many upstream sessions were opened (1 while nothing failed)."""
        return self._opener.sessions_opened

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """What the upstream declared (empty while no session is open)."""
        return self._session.capabilities if self._session is not None else {}

    @property
    def description(self) -> str:
        """One line on the server: its declared description or title, else the start of its instructions."""
        session = self._session
        info = session.server_info if session is not None else {}
        texts = (info.get("description"), info.get("title"), session and session.instructions)
        return next((" ".join(t.split())[:160] for t in texts if isinstance(t, str) and t.strip()), "")

    @property
    def connected(self) -> bool:
        """Whether a session with the upstream is open (its tools are listed)."""
        return self._session is not None and self._session.alive

    @property
    def status(self) -> str:
        """The upstream as ``toolbridge health`` shows it: connected, starting, or failing and retried."""
        return self._restarts.status(connected=self.connected, running=self._tg is not None)

    def attach(self, link: HubLink) -> None:
        """Report upstream events and tool list changes to the hub of ``link`` (``Hub.add_connector``)."""
        if self._hub is not None:
            raise ConfigurationError(
                f"MCP connector {self._name!r} is already in a hub",
                hint="build one connector per hub (its session and tools belong to one)",
            )
        self._hub = link
        self._on_event.append(link.emit)
        self._on_tools_changed.append(link.tools_changed)

    def _tools_changed(self) -> None:
        for callback in self._on_tools_changed:
            callback()

    def _emit(self, event: HubEvent) -> None:
        for callback in self._on_event:
            callback(event)

    def _relist(self) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._rediscover)

    # -- lifetime ----------------------------------------------------------------------------------

    async def __aenter__(self) -> McpConnector:
        stack = AsyncExitStack()
        try:
            if isinstance(self.server, HttpServer):  # closed last: the sessions end (DELETE) on it
                transport = self._transport
                if transport is None and self.server.fast:
                    transport = self._opener.fast = FastTransport(tls_context(self.server))
                client = upstream_client(self.server, transport=transport)
                stack.push_async_callback(client.aclose)
                self._opener.client = client
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._tg.cancel_scope.cancel)
            stack.push_async_callback(self._close_session)
            stack.push_async_callback(self.pool.aclose)
            if isinstance(self.server, HttpServer):
                self._tg.start_soon(self.pool.run_sweeper)
            await self._catalog.load_pins()
            try:
                async with self._lock:
                    await self._open()
            except (UpstreamUnavailable, UpstreamStatusError) as exc:  # not fatal: the hub serves the others
                logger.warning("connector %r starts without tools: %s", self._name, exc)
                self._tg.start_soon(self._keep_trying)
        except BaseException:  # a failed or cancelled start: undo what started, then re-raise
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._stop_listening(session)
            await session.aclose()

    def _stop_listening(self, session: Session) -> None:
        scope = self._listening.pop(id(session), None)
        if scope is not None:
            scope.cancel()

    async def _default_auth(self) -> httpx2.Auth | None:
        """The credentials of requests outside a call: the default connection's, if any."""
        if self._default_credentials is None:
            return None
        try:
            credentials = await self._default_credentials()
        except ToolbridgeError as exc:  # not connected yet, or the connection needs a person
            raise self._opener.no_connection(exc) from exc
        self._inbound.learn_secrets(
            _connection_of(credentials) or "default", getattr(credentials, "secrets", ())
        )
        self._default_connection = _connection_of(credentials)
        return credentials.auth if credentials is not None else None

    async def _open(self, auth: httpx2.Auth | None = None) -> Session:
        """A new session, with the tools listed again (the caller holds the lock), opened as ``auth``
        (a call's credentials) or else as the default connection."""
        if auth is None:
            auth = await self._default_auth()
        with _for_every_call():
            return await self._open_session(auth)

    async def _open_session(self, auth: httpx2.Auth | None) -> Session:
        assert self._tg is not None, "the connector is not running"
        with self._opener.opening():
            session = await self._opener.negotiate(self._tg, auth)
            self._stateless = session.modern
            try:
                secrets = self._inbound.secret_forms
                await self._catalog.discover(session, auth, secrets)
                self.extras = await discover_extras(
                    session, self._namespace, auth, noted=self._unlisted, secrets=secrets
                )
            except BaseException:  # a failed or cancelled discovery: the session is not kept; re-raised
                await session.aclose()
                raise
        self._session = session
        if session.modern and self._tg is not None:
            self._tg.start_soon(self._listen, session)  # list changes come on a listen stream
        elif isinstance(session.channel, HttpChannel) and self._tg is not None:  # on the session's GET stream
            tg, headers = self._tg, {MCP_PROTOCOL_VERSION_HEADER: session.version}
            session.channel.hold_stream(tg, headers, lambda: tg.start_soon(self._rediscover))
        return session

    async def _open_for_connection(self, auth: httpx2.Auth | None) -> Session:
        """A session of a call's own connection (``auth``, its current credentials): no tools listed."""
        assert self._tg is not None, "the connector is not running"
        with self._opener.opening(shared=False), _for_every_call():
            return await self._opener.negotiate(self._tg, auth)

    async def _keep_trying(self) -> None:
        """Reconnect with backoff until the upstream answers; its tools then join the catalog."""
        while self._session is None:
            await anyio.sleep(max(self._restarts.delay, 0.01))
            try:
                await self._live(None)
            except UpstreamStatusError as exc:  # refused our credentials: wait as for a failure
                self._restarts.failed(str(exc))
                logger.info("connector %r: the upstream refused the connection: %s", self._name, exc)
            except UpstreamUnavailable as exc:
                failures = self._restarts.failures
                logger.info("connector %r: still no upstream (attempt %d): %s", self._name, failures, exc)
            except ConfigurationError as exc:
                logger.error("connector %r gives up reconnecting: %s", self._name, exc)
                return

    # -- sessions: reuse, replace ------------------------------------------------------------------

    async def _live(self, deadline: float | None, auth: httpx2.Auth | None = None) -> Session:
        session = self._session
        if session is not None and session.alive:
            return session
        async with self._lock:
            session = self._session
            if session is not None and session.alive:
                return session
            await self._close_session()
            await self._restarts.wait(deadline)
            return await self._open(auth)

    async def _retire(self, session: Session, *, failed: bool) -> None:
        async with self._lock:
            if self._session is session:
                self._session = None
                if failed:
                    self._restarts.failed()
        self._stop_listening(session)
        with anyio.CancelScope(shield=True):
            await session.aclose()

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        auth: httpx2.Auth | None = None,
        tool: str | None = None,
        deadline: float | None = None,
        connection: str | None = None,
        param_headers: Mapping[str, str] | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The result of one upstream request signed by ``auth`` on the shared session — or, given a
        ``connection``, on that connection's own pooled session — re-established once if needed."""
        for attempt in (1, 2):
            session = await self._acquire(connection, deadline, auth)
            try:
                result = await session.request(
                    method, params, auth=auth, param_headers=param_headers, capabilities=capabilities
                )
            except SessionExpired as exc:
                await self._drop(session, connection, failed=False)
                if attempt == 2:
                    raise UpstreamUnavailable(
                        f"the upstream of {self._name!r} dropped a session it had just opened",
                        sent=True,
                        tool=tool,
                    ) from exc
                continue
            except UpstreamUnavailable as exc:
                await self._drop(session, connection, failed=True)
                if exc.sent or attempt == 2:
                    exc.tool = exc.tool or tool
                    raise
                continue
            except RpcError as exc:
                raise rpc_error(exc, method, session.channel.describe, tool) from exc
            finally:
                if connection is not None:
                    self.pool.release(connection, session)
            if connection is None:
                self._restarts.succeeded()
            return result
        raise AssertionError("unreachable")

    async def _acquire(
        self, connection: str | None, deadline: float | None, auth: httpx2.Auth | None
    ) -> Session:
        if connection is None:
            return await self._live(deadline, auth)
        return await self.pool.acquire(connection, lambda: self._open_for_connection(auth))

    async def _drop(self, session: Session, connection: str | None, *, failed: bool) -> None:
        if connection is None:
            await self._retire(session, failed=failed)
        else:
            await self.pool.retire(connection, session)

    def _own_session(self, credentials: Credentials | None) -> str | None:
        """The connection whose own session a call uses: one other than the default connection, on an
        HTTP upstream in the handshake era or over legacy SSE (stateless requests stand alone)."""
        connection = _connection_of(credentials)
        if connection is None or connection == self._default_connection or self._stateless:
            return None
        return connection if isinstance(self.server, HttpServer) else None

    async def _listen(self, session: Session) -> None:
        with anyio.CancelScope() as scope:  # cancelled when the session is retired (ends its listen POST)
            self._listening[id(session)] = scope
            try:
                await listen_for_changes(
                    session,
                    lambda: self._session is session and session.alive,
                    self._default_auth,
                    self._watched,
                )
            finally:
                self._listening.pop(id(session), None)

    async def _rediscover(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            auth = await self._default_auth()  # listed as the connector, whichever call's context started it
            secrets = self._inbound.secret_forms
            await self._catalog.discover(session, auth, secrets)
            before, self.extras = (
                self.extras,
                await discover_extras(session, self._namespace, auth, noted=self._unlisted, secrets=secrets),
            )
            if before.prompts != self.extras.prompts:
                self._emit(ListChanged(self._name, "prompts"))
            if (before.resources, before.templates) != (self.extras.resources, self.extras.templates):
                self._emit(ListChanged(self._name, "resources"))
        except (UpstreamUnavailable, UpstreamStatusError, RpcError, SessionExpired) as exc:
            logger.warning("could not list the tools of %s again: %s", self._name, exc)

    # -- tools, pins -------------------------------------------------------------------------------

    def tools(self) -> Sequence[Tool]:
        return self._catalog.tools()

    def review(self) -> list[ToolReview]:
        """Every upstream tool with its approval state, flags and (when changed) the diff."""
        return self._catalog.review()

    async def approve(self, names: Iterable[str] | None = None, *, by: str) -> list[str]:
        """Approve the current definitions of ``names`` (None: every tool not approved yet)."""
        return await self._catalog.approve(names, by=by)

    # -- calls -------------------------------------------------------------------------------------

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        try:
            result = await self._call_tool(tool, arguments, invocation)
        except ToolbridgeError as exc:
            redact_error(exc, self._static_secrets)
            raise
        return redact_value(result, self._static_secrets)

    async def _call_tool(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        entry = self._catalog.entry(tool.name)
        if entry.review.state != "approved":
            raise quarantine_error(entry.tool)
        agent = CALL_INPUT.get()
        params: dict[str, Any] = {"name": entry.upstream, "arguments": dict(arguments)}
        if agent is not None:
            params.update(agent.params())
        credentials = invocation.credentials
        self._inbound.learn_secrets(
            _connection_of(credentials) or "default", getattr(credentials, "secrets", ())
        )
        own = self._own_session(credentials)
        task = self._routed_task(entry, params) if own is None else None  # (own session: as any call)
        told = agent.capabilities if agent is not None else None
        if told is not None and task is None:  # no task toolbridge could not route
            told = without_tasks(told)
        events = CALL_EVENTS.get()
        asker = events.ask if agent is None and events is not None else None
        auth = credentials.auth if credentials is not None else None

        async def send(params: dict[str, Any]) -> dict[str, Any]:
            return await self.request(
                "tools/call",
                params,
                auth=auth,
                tool=tool.name,
                deadline=invocation.deadline,
                connection=own,
                param_headers=mcp_param_headers(entry.param_headers, arguments)
                if entry.param_headers
                else None,
                capabilities=told if agent is not None else _askable(events),
            )

        logs = self._stateless and events is not None and events.log_level is not None
        with self._inbound.in_flight(invocation.request_id, events, invocation.deadline, logs=logs) as token:
            meta: dict[str, Any] = {"progressToken": token} if token is not None else {}
            if logs and events is not None:  # a stateless-era server logs only when asked
                meta[LOG_LEVEL_META_KEY] = events.log_level
            if meta:
                params["_meta"] = meta
            result = await send(params)
            for _ in range(_MAX_ROUNDS if asker is not None else 0):  # a handshake-era agent
                answers = await self._inbound.answer(result, asker)  # type: ignore[arg-type]
                if answers is None:
                    break
                result = await send({**params, **answers})
        if task is not None and created_task(result):  # the upstream runs it as a task
            task.created, task.auth, task.connector = own_answer(result), auth, self._name
            task.tool = tool.name
            return task.created
        if "content" in result:  # resource links and embedded resources: URIs namespaced
            result = {**result, "content": outward_content(self._namespace, result["content"])}
        return call_value(result, tool.name, agent)

    def _routed_task(self, entry: Entry, params: dict[str, Any]) -> TaskAsk | None:
        """The agent's task for this call if the upstream can take it (None: the call runs plainly).
        2026-07-28: the agent's declaration of the extension goes upstream with its capabilities;
        2025-11-25: the task's metadata goes in ``params``."""
        task = CALL_TASK.get()
        if task is None:
            return None
        if task.modern:
            return task if self.takes_task_extension() else None
        if not self.augments(entry.tool.meta["toolbridge/upstream"]["execution"]):
            return None
        params["task"] = dict(task.metadata)
        return task


@contextlib.contextmanager
def _for_every_call() -> Iterator[None]:
    """Opening a session within a call: the tasks it starts (its channel's readers, its stream) serve
    every call, so they must not carry that call's events (an upstream's request read there would be
    put to that call's agent)."""
    token = CALL_EVENTS.set(None)
    try:
        yield
    finally:
        CALL_EVENTS.reset(token)


_MAX_ROUNDS = 8
"""``input_required`` rounds put to a handshake-era agent within one call."""


def _askable(events: CallEvents | None) -> Mapping[str, Any] | None:
    """A handshake-era agent's capabilities, told to a stateless-era upstream (which then asks only for
    what the agent can answer: toolbridge puts its input requests to the agent as server requests)."""
    return events.capabilities if events is not None and events.ask is not None else None


def _connection_of(credentials: Credentials | None) -> str | None:
    """The id of the connection credentials were resolved from (the credentials layer's ``connection_id``)."""
    ident = getattr(credentials, "connection_id", None)
    return ident if isinstance(ident, str) else None
