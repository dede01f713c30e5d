"""The MCP connector: an upstream MCP server's tools in the catalog, called over one pooled session.

One session per connector, shared by every call and every agent (a JSON-RPC session multiplexes
concurrent requests). It is opened when the hub starts, which is also when the tools are discovered.
A crashed process or broken connection is replaced on the next call (stdio servers restart with
backoff); an expired session (HTTP 404) is re-established and the request sent again, once.

Credentials (HTTP upstreams) are per request, not per session: each call's own connection (resolved by
the hub into ``Invocation.credentials``) signs each of its POSTs (see ``_http.UPSTREAM_AUTH``). Opening
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
import dataclasses
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import anyio
import anyio.abc
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER, mcp_param_headers, x_mcp_header_map

from toolbridge._redact import forms, redact_value
from toolbridge.catalog import (
    MCP_NAME_META_KEY,
    MCP_RESULT_META_KEY,
    QUARANTINE_META_KEY,
    Tool,
    quarantine_error,
)
from toolbridge.connectors._base import Credentials, Invocation
from toolbridge.connectors._events import (
    CALL_EVENTS,
    LOG_LEVELS,
    CallEvents,
    HubEvent,
    ListChanged,
    LogMessage,
    ResourceUpdated,
)
from toolbridge.connectors._input import CALL_INPUT
from toolbridge.connectors.mcp._answers import (
    call_value,
    invalid_headers,
    object_schema,
    rpc_error,
)
from toolbridge.connectors.mcp._channel import Channel, Message, SessionExpired
from toolbridge.connectors.mcp._config import (
    Approval,
    HttpServer,
    Protocol,
    StdioServer,
    ToolRules,
    Transport,
)
from toolbridge.connectors.mcp._federation import Extras, FederatedRequests, discover_extras
from toolbridge.connectors.mcp._http import UPSTREAM_AUTH, HttpChannel
from toolbridge.connectors.mcp._listen import listen_for_changes
from toolbridge.connectors.mcp._naming import catalog_names
from toolbridge.connectors.mcp._pins import (
    Pin,
    PinStore,
    State,
    ToolReview,
    definition_diff,
    definition_digest,
    instruction_flags,
    pinned_definition,
    quarantine_message,
)
from toolbridge.connectors.mcp._pool import SessionPool
from toolbridge.connectors.mcp._session import PROBE_TIMEOUT, NoAnswer, RpcError, Session
from toolbridge.connectors.mcp._sse import SseChannel
from toolbridge.connectors.mcp._stdio import StdioChannel
from toolbridge.connectors.mcp._uris import outward, outward_content
from toolbridge.errors import (
    ConfigurationError,
    ToolbridgeError,
    ToolNotFound,
    UpstreamStatusError,
    UpstreamUnavailable,
    close_matches,
)

__all__ = ["McpConnector", "ToolReview"]

logger = logging.getLogger("toolbridge.connectors.mcp")

RESTART_DELAYS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before restarting a server after 1, 2, 3 … consecutive failures (the last one repeats)."""
_LIST_CHANGED = frozenset(f"notifications/{kind}/list_changed" for kind in ("tools", "prompts", "resources"))
_LIST_CHANGED_OR_LISTENING = _LIST_CHANGED | {"notifications/subscriptions/acknowledged"}
_AUTH_STATUSES = frozenset({401, 403})
_LEGACY_STATUSES = frozenset({400, 404, 405})
"""A streamable HTTP POST answered with these may be a legacy SSE server (MCP backwards compatibility)."""
_PY_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
}
_PY_LEVELS |= {level: logging.WARNING for level in ("error", "critical", "alert", "emergency")}
_MAX_SECRET_SOURCES = 10_000
"""Connections whose secrets are remembered for masking; past it, upstream log data is not forwarded."""


@dataclass(frozen=True, slots=True)
class _Entry:
    upstream: str
    tool: Tool
    review: ToolReview
    param_headers: Mapping[tuple[str, ...], str] = dataclasses.field(default_factory=dict)
    """Argument path → ``Mcp-Param-*`` token, from the upstream schema's ``x-mcp-header`` annotations."""


class McpConnector(FederatedRequests):
    """Tools of one upstream MCP server (:class:`StdioServer` or :class:`HttpServer`).

    ``pins`` stores approved definitions; without it every tool is trusted as listed. With it, a tool is
    visible once approved (``approval="all-on-first-connect"`` approves what the first connection
    lists) and is quarantined when its definition later differs from the approved one.
    ``on_tools_changed`` is called when the tool list or a tool's state changed (the hub re-reads
    :meth:`tools`).
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
    ) -> None:
        self._name = name
        self._namespace = name if prefixed else ""
        self._probe_timeout = probe_timeout
        self._default_credentials = default_credentials
        self._connection_env = connection_env
        self.server = server
        self._rules = rules or ToolRules()
        self._store = pins
        self._approval: Approval = approval
        self.on_tools_changed = on_tools_changed
        self.on_event = on_event
        """Receives upstream log messages, prompt/resource list changes and resource updates."""
        self._listening: dict[int, anyio.CancelScope] = {}
        """Session (by id) → the scope of its listen loop (stateless-era upstreams)."""
        self._secret_forms: dict[str, tuple[str, ...]] = {}
        """Where secrets came from (a connection id, ``env``) → their current forms, for masking logs."""
        self._secrets: tuple[str, ...] = ()
        """Every remembered form, longest first (a secret inside a longer one must not break the longer)."""
        """Forms of the default connection's secrets, masked in forwarded log messages."""
        self._client_info = {"name": client_name, "version": "1"}
        self._delays = tuple(restart_delays) or (0.0,)
        self._entries: dict[str, _Entry] = {}
        self._mcp_names: dict[str, str] = {}
        """Catalog name → the name MCP clients see (only when mounted unprefixed)."""
        self.extras = Extras()
        self._progress: dict[str, CallEvents] = {}
        self._tokens = itertools.count(1)
        """Prompts and resources the upstream offers (see ``_federation``)."""
        self._pins: dict[str, Pin] = {}
        self._session: Session | None = None
        self._lock = anyio.Lock()
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._failures = 0
        self._down_at = 0.0
        self._last_error: str | None = None
        self._transport: Transport = "auto" if isinstance(server, StdioServer) else server.transport
        self.sessions_opened = 0
        """How many upstream sessions were opened (1 while nothing failed)."""
        self.pool = session_pool if session_pool is not None else SessionPool()
        """Sessions of the connections other than the default one (handshake era and legacy SSE)."""
        self._default_connection: str | None = None
        self._stateless = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def transport(self) -> Transport | None:
        """How an HTTP upstream is spoken to; under ``auto``, what worked (``auto`` until something did)."""
        return None if isinstance(self.server, StdioServer) else self._transport

    @property
    def _where(self) -> str:
        if isinstance(self.server, StdioServer):
            return f"the stdio server {self.server.command!r}"
        return f"the MCP server at {self.server.url}"

    @property
    def capabilities(self) -> Mapping[str, Any]:
        """What the upstream declared (empty while no session is open)."""
        return self._session.capabilities if self._session is not None else {}

    @property
    def connected(self) -> bool:
        """Whether a session with the upstream is open (its tools are listed)."""
        return self._session is not None and self._session.alive

    @property
    def status(self) -> str:
        """The upstream as ``toolbridge health`` shows it: connected, starting, or failing and retried."""
        if self.connected:
            return "connected"
        if self._failures == 0 or self._last_error is None:
            return "starting" if self._tg is not None else "stopped"
        delay = self._delays[min(self._failures, len(self._delays)) - 1]
        wait = max(0.0, self._down_at + delay - anyio.current_time())
        return f"down: failed {self._failures} time(s), next try in {wait:.0f} s: {self._last_error}"

    # -- lifetime ----------------------------------------------------------------------------------

    async def __aenter__(self) -> McpConnector:
        stack = AsyncExitStack()
        try:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._tg.cancel_scope.cancel)
            stack.push_async_callback(self._close_session)
            stack.push_async_callback(self.pool.aclose)
            if isinstance(self.server, HttpServer):
                self._tg.start_soon(self.pool.run_sweeper)
            if self._store is not None:
                self._pins = await self._store.load(self._name)
            try:
                async with self._lock:
                    await self._open()
            except (UpstreamUnavailable, UpstreamStatusError) as exc:  # not fatal: the hub serves the others
                logger.warning("connector %r starts without tools: %s", self._name, exc)
                self._tg.start_soon(self._keep_trying)
        except BaseException:
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

    async def _channel(self, transport: Transport) -> Channel:
        assert self._tg is not None, "the connector is not running"
        if isinstance(self.server, StdioServer):
            return StdioChannel(await self._stdio_server(self.server), self._tg, self._on_message)
        if transport == "sse":
            return SseChannel(self.server, self._tg, self._on_message)
        return HttpChannel(self.server, self._on_message)

    async def _stdio_server(self, server: StdioServer) -> StdioServer:
        """The server with its ``connection:`` environment values read from the connection, at each start."""
        if self._connection_env is None:
            return server
        try:
            extra = await self._connection_env()
        except ToolbridgeError as exc:  # not connected yet, or the connection needs a person
            raise self._no_connection(exc) from exc
        self._learn_secrets("env", forms(extra.values()))
        return dataclasses.replace(server, env={**server.env, **extra})

    @contextlib.asynccontextmanager
    async def _default_auth(self) -> AsyncIterator[None]:
        """Requests outside a call (or a call without credentials) use the default connection, if any."""
        if UPSTREAM_AUTH.get() is not None or self._default_credentials is None:
            yield
            return
        try:
            credentials = await self._default_credentials()
        except ToolbridgeError as exc:  # not connected yet, or the connection needs a person
            raise self._no_connection(exc) from exc
        self._learn_secrets(_connection_of(credentials) or "default", getattr(credentials, "secrets", ()))
        self._default_connection = _connection_of(credentials)
        token = UPSTREAM_AUTH.set(credentials.auth if credentials is not None else None)
        try:
            yield
        finally:
            UPSTREAM_AUTH.reset(token)

    async def _open(self) -> Session:
        """A new session, with the tools listed again (the caller holds the lock)."""
        async with self._default_auth():
            return await self._open_session()

    async def _open_session(self) -> Session:
        with self._opening():
            session = await self._negotiate()
            self._stateless = session.modern
            try:
                await self._discover(session)
                self.extras = await discover_extras(session, self._namespace)
            except BaseException:
                await session.aclose()
                raise
        self._session = session
        if session.modern and self._tg is not None:
            self._tg.start_soon(self._listen, session)  # list changes come on a listen stream
        elif isinstance(session.channel, HttpChannel) and self._tg is not None:  # on the session's GET stream
            tg, headers = self._tg, {MCP_PROTOCOL_VERSION_HEADER: session.version}
            session.channel.hold_stream(tg, headers, lambda: tg.start_soon(self._rediscover))
        return session

    async def _open_for_connection(self) -> Session:
        """A session of the call's own connection (its credentials are current): no tools listed."""
        with self._opening(shared=False):
            return await self._negotiate()

    @contextlib.contextmanager
    def _opening(self, *, shared: bool = True) -> Iterator[None]:
        """Failures to open a session, as the errors the call path acts on (``shared``: counted for the
        restart backoff)."""
        try:
            yield
        except ConfigurationError:
            raise
        except UpstreamStatusError as exc:
            if exc.upstream_status in _AUTH_STATUSES:  # the credentials, not the upstream: refresh, or tell
                raise
            raise self._unavailable(exc, count=shared) from exc
        except (UpstreamUnavailable, RpcError, SessionExpired, TimeoutError) as exc:
            raise self._unavailable(exc, count=shared) from exc

    async def _negotiate(self) -> Session:
        """``transport: auto`` POSTs first (streamable HTTP); a 400, 404 or 405 makes it GET the URL as a
        legacy SSE stream (the MCP specification's backwards-compatibility rule). What worked is kept."""
        transport = self._transport
        if transport != "auto":
            return await self._handshake(transport)
        try:
            session = await self._handshake("streamable-http")
        except UpstreamStatusError as exc:
            if exc.upstream_status not in _LEGACY_STATUSES or self.server.protocol == "2026-07-28":
                raise
            try:
                session = await self._handshake("sse")
            except (UpstreamUnavailable, UpstreamStatusError) as legacy:
                if isinstance(legacy, UpstreamStatusError) and legacy.upstream_status in _AUTH_STATUSES:
                    raise
                raise UpstreamUnavailable(
                    f"it refused a streamable HTTP POST (HTTP {exc.upstream_status}) and its GET opened "
                    f"no legacy SSE stream ({legacy})",
                    sent=False,
                    hint="check the URL (the MCP endpoint, or the SSE stream of a legacy server)",
                ) from legacy
            logger.info("connector %r: %s speaks the legacy SSE transport", self._name, self._where)
            self._transport = "sse"
            return session
        self._transport = "streamable-http"
        return session

    async def _handshake(self, transport: Transport) -> Session:
        protocol = self.server.protocol
        if transport == "sse" and protocol == "auto":
            protocol = "2025-11-25"  # the SSE transport predates the stateless era: no discover probe
        try:
            return await self._start(transport, protocol)
        except NoAnswer as exc:
            if protocol != "auto":
                raise
            # the silent process may yet answer the probe and so choose the stateless era: never ask
            # it to initialize; a fresh process is asked in the handshake era instead
            logger.warning("connector %r: %s; starting it again in the handshake era", self._name, exc)
            return await self._start(transport, "2025-11-25")

    async def _start(self, transport: Transport, protocol: Protocol) -> Session:
        channel = await self._channel(transport)
        stdio = self.server if isinstance(self.server, StdioServer) else None
        session = Session(
            channel,
            protocol=protocol,
            client_info=self._client_info,
            probe_timeout=self._probe_timeout,
            start_timeout=stdio.start_timeout if stdio is not None else None,
            background=self._tg,
        )
        try:
            await channel.start()
            await session.open()
        except BaseException:
            await session.aclose()
            raise
        self.sessions_opened += 1
        return session

    def _no_connection(self, exc: ToolbridgeError) -> UpstreamUnavailable:
        self._failures += 1
        self._down_at = anyio.current_time()
        self._last_error = exc.message
        return UpstreamUnavailable(
            f"connector {self._name!r} has no usable connection: {exc.message}", sent=False, hint=exc.hint
        )

    def _unavailable(self, exc: Exception, *, count: bool = True) -> UpstreamUnavailable:
        if count:
            self._down_at = anyio.current_time()
            self._failures += 1
            self._last_error = str(exc)
        return UpstreamUnavailable(
            f"cannot open a session with {self._where} (connector {self._name!r}): {exc}",
            sent=False,
            hint="check that the upstream MCP server runs and speaks MCP",
        )

    async def _keep_trying(self) -> None:
        """Reconnect with backoff until the upstream answers; its tools then join the catalog."""
        while self._session is None:
            delay = self._delays[min(self._failures, len(self._delays)) - 1] if self._failures else 0.0
            await anyio.sleep(max(delay, 0.01))
            try:
                await self._live(None)
            except UpstreamStatusError as exc:  # refused our credentials: wait as for a failure
                self._failures += 1
                self._down_at = anyio.current_time()
                self._last_error = str(exc)
                logger.info("connector %r: the upstream refused the connection: %s", self._name, exc)
            except UpstreamUnavailable as exc:
                logger.info(
                    "connector %r: still no upstream (attempt %d): %s", self._name, self._failures, exc
                )
            except ConfigurationError as exc:
                logger.error("connector %r gives up reconnecting: %s", self._name, exc)
                return

    # -- sessions: reuse, replace ------------------------------------------------------------------

    async def _live(self, deadline: float | None) -> Session:
        session = self._session
        if session is not None and session.alive:
            return session
        async with self._lock:
            session = self._session
            if session is not None and session.alive:
                return session
            await self._close_session()
            await self._wait_to_restart(deadline)
            return await self._open()

    async def _wait_to_restart(self, deadline: float | None) -> None:
        if self._failures == 0:
            return
        delay = self._delays[min(self._failures, len(self._delays)) - 1]
        wait = self._down_at + delay - anyio.current_time()
        if wait <= 0:
            return
        if deadline is not None and anyio.current_time() + wait > deadline:
            raise UpstreamUnavailable(
                f"the upstream of connector {self._name!r} failed {self._failures} time(s) in a row; "
                f"toolbridge reconnects in {wait:.1f} s",
                sent=False,
                hint=f"try again in {wait:.1f} s",
            )
        await anyio.sleep(wait)

    async def _retire(self, session: Session, *, failed: bool) -> None:
        async with self._lock:
            if self._session is session:
                self._session = None
                if failed:
                    self._failures += 1
                    self._down_at = anyio.current_time()
        self._stop_listening(session)
        with anyio.CancelScope(shield=True):
            await session.aclose()

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        tool: str | None = None,
        deadline: float | None = None,
        connection: str | None = None,
        param_headers: Mapping[str, str] | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The result of one upstream request on the shared session — or, given a ``connection``, on that
        connection's own pooled session — re-established once if needed."""
        for attempt in (1, 2):
            session = await self._acquire(connection, deadline)
            try:
                result = await session.request(
                    method, params, param_headers=param_headers, capabilities=capabilities
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
                self._failures = 0
            return result
        raise AssertionError("unreachable")

    async def _acquire(self, connection: str | None, deadline: float | None) -> Session:
        if connection is None:
            return await self._live(deadline)
        return await self.pool.acquire(connection, self._open_for_connection)

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

    # -- upstream messages -------------------------------------------------------------------------

    async def _on_message(self, message: Message) -> Message | None:
        """What the channel's reader hands over; it must never raise (that would end the reader)."""
        try:
            return await self._handle_message(message)
        except Exception:  # a closed agent stream, a bad listener: log it, keep reading
            logger.exception("%s: could not handle %r from the upstream", self._name, message.get("method"))
            return None

    async def _handle_message(self, message: Message) -> Message | None:
        method = message.get("method")
        raw = message.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if "id" in message:  # a request from the server
            if method == "ping":
                return {"result": {}}
            return {
                "error": {"code": -32601, "message": f"toolbridge does not serve {method!r} to upstreams"}
            }
        if method in _LIST_CHANGED_OR_LISTENING and self._tg is not None:
            self._tg.start_soon(self._rediscover)  # (on a listen ack: what changed before it?)
        elif method == "notifications/progress":
            events = self._progress.get(str(params.get("progressToken")))
            if events is not None and isinstance(params.get("progress"), int | float):
                total = params.get("total") if isinstance(params.get("total"), int | float) else None
                note = params.get("message") if isinstance(params.get("message"), str) else None
                await events.progress(float(params["progress"]), total, note)
        elif method == "notifications/message":
            self._log(params)
        elif method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
            self._emit(ResourceUpdated(self._name, outward(self._namespace, params["uri"])))
        return None

    def _learn_secrets(self, source: str, secrets: Sequence[str]) -> None:
        """Remember the current forms of a connection's secrets (a refresh replaces them), to mask logs."""
        if not secrets or self._secret_forms.get(source) == tuple(secrets):
            return
        self._secret_forms[source] = tuple(secrets)
        every = {form for forms_ in self._secret_forms.values() for form in forms_}
        self._secrets = tuple(sorted(every, key=len, reverse=True))

    def _emit(self, event: HubEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _log(self, params: Mapping[str, Any]) -> None:
        level = params.get("level")
        level = level if level in LOG_LEVELS else "info"
        if len(self._secret_forms) > _MAX_SECRET_SOURCES:  # cannot vouch for the masking any more
            data: Any = "[an upstream log message, not forwarded: too many connections to mask]"
        else:
            data = redact_value(params.get("data"), self._secrets) if self._secrets else params.get("data")
        upstream = params.get("logger")
        logger.log(_PY_LEVELS.get(level, logging.INFO), "%s says: %s", self._name, str(data)[:500])
        self._emit(LogMessage(self._name, level, data, upstream if isinstance(upstream, str) else None))

    async def _listen(self, session: Session) -> None:
        UPSTREAM_AUTH.set(None)  # started from whatever context opened the session: listen as the connector
        with anyio.CancelScope() as scope:  # cancelled when the session is retired (ends its listen POST)
            self._listening[id(session)] = scope
            try:
                await listen_for_changes(
                    session, lambda: self._session is session and session.alive, self._default_auth
                )
            finally:
                self._listening.pop(id(session), None)

    async def _rediscover(self) -> None:
        session = self._session
        if session is None:
            return
        UPSTREAM_AUTH.set(None)  # a task of its own, started from some call's context: list as the connector
        try:
            async with self._default_auth():
                await self._discover(session)
                before, self.extras = self.extras, await discover_extras(session, self._namespace)
            if before.prompts != self.extras.prompts:
                self._emit(ListChanged(self._name, "prompts"))
            if (before.resources, before.templates) != (self.extras.resources, self.extras.templates):
                self._emit(ListChanged(self._name, "resources"))
        except (UpstreamUnavailable, UpstreamStatusError, RpcError, SessionExpired) as exc:
            logger.warning("could not list the tools of %s again: %s", self._name, exc)

    # -- tools, pins -------------------------------------------------------------------------------

    def tools(self) -> Sequence[Tool]:
        return [entry.tool for entry in self._entries.values()]

    def review(self) -> list[ToolReview]:
        """Every upstream tool with its approval state, flags and (when changed) the diff."""
        return [entry.review for entry in sorted(self._entries.values(), key=lambda e: e.tool.name)]

    async def _discover(self, session: Session) -> None:
        listed = await session.list_all("tools/list", "tools")
        upstream = {str(t["name"]): t for t in listed if isinstance(t.get("name"), str)}
        for bad in [n for n, t in upstream.items() if session.modern and invalid_headers(n, t)]:
            del upstream[bad]  # the stateless era: clients MUST leave such tools out
        names = catalog_names(self._name, upstream)
        self._mcp_names = (
            {} if self._namespace else {names[u]: n for u, n in catalog_names("", upstream).items()}
        )
        definitions = {
            names[u]: pinned_definition(t) for u, t in upstream.items() if not self._rules.hidden(u)
        }
        if self._store is not None and self._approval == "all-on-first-connect":
            fresh = {n: d for n, d in definitions.items() if n not in self._pins}
            self._pins.update(await self._store.approve(self._name, fresh, by="config:all-on-first-connect"))
        by_name = {names[u]: u for u in upstream}
        entries = {n: self._build(n, by_name[n], upstream[by_name[n]], d) for n, d in definitions.items()}
        self._set_entries(entries)

    def _build(
        self, name: str, upstream: str, listed: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> _Entry:
        digest = definition_digest(definition)
        pin = self._pins.get(name)
        state: State = "approved"
        diff = None
        if self._store is not None:
            if pin is None:
                state = "pending"
            elif pin.digest != digest:
                state, diff = "changed", definition_diff(pin.definition, definition)
        flags = tuple(instruction_flags(definition))
        review = ToolReview(
            name, upstream, state, digest, flags, diff, pin.approved_by if pin else None, definition
        )
        meta: dict[str, Any] = {
            MCP_RESULT_META_KEY: True,
            "toolbridge/upstream": {"name": upstream, "annotations": listed.get("annotations")},
        }
        if name in self._mcp_names:  # mounted unprefixed: MCP clients know it by the upstream's name
            meta[MCP_NAME_META_KEY] = self._mcp_names[name]
        if state != "approved":
            meta[QUARANTINE_META_KEY] = {"message": quarantine_message(review), "diff": diff, "flags": flags}
        tool = Tool(
            name=name,
            connector=self._name,
            description=str(listed.get("description") or upstream),
            input_schema=object_schema(listed.get("inputSchema")),
            annotations=self._rules.annotations(upstream, listed.get("annotations")),
            title=listed["title"] if isinstance(listed.get("title"), str) else None,
            output_schema=listed["outputSchema"] if isinstance(listed.get("outputSchema"), dict) else None,
            meta=MappingProxyType(meta),
        )
        return _Entry(upstream, tool, review, MappingProxyType(x_mcp_header_map(listed.get("inputSchema"))))

    def _set_entries(self, entries: dict[str, _Entry]) -> None:
        before = {n: e.review.digest + e.review.state for n, e in self._entries.items()}
        self._entries = entries
        after = {n: e.review.digest + e.review.state for n, e in entries.items()}
        if before != after and self.on_tools_changed is not None:
            self.on_tools_changed()

    async def approve(self, names: Iterable[str] | None = None, *, by: str) -> list[str]:
        """Approve the current definitions of ``names`` (None: every tool not approved yet)."""
        if self._store is None:
            raise ConfigurationError(
                f"connector {self._name!r} pins nothing", hint="give it a pin store (a hub database)"
            )
        if names is None:
            chosen = [n for n, e in self._entries.items() if e.review.state != "approved"]
        else:
            chosen = list(names)
            for name in chosen:
                if name not in self._entries:
                    raise ToolNotFound(name, suggestions=close_matches(name, self._entries))
        definitions = {n: self._entries[n].review.definition for n in chosen}
        self._pins.update(await self._store.approve(self._name, definitions, by=by))
        self._set_entries(
            {n: self._build(n, e.upstream, _listed(e), e.review.definition) for n, e in self._entries.items()}
        )
        return sorted(chosen)

    # -- calls -------------------------------------------------------------------------------------

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        entry = self._entries.get(tool.name)
        if entry is None:
            raise ToolNotFound(tool.name, suggestions=close_matches(tool.name, self._entries))
        if entry.review.state != "approved":
            raise quarantine_error(entry.tool)
        agent = CALL_INPUT.get()
        params: dict[str, Any] = {"name": entry.upstream, "arguments": dict(arguments)}
        if agent is not None:
            params.update(agent.params())
        events = CALL_EVENTS.get()
        token = f"{invocation.request_id}:{next(self._tokens)}"
        if events is not None:
            params["_meta"] = {"progressToken": token}
            self._progress[token] = events
        credentials = invocation.credentials
        self._learn_secrets(_connection_of(credentials) or "default", getattr(credentials, "secrets", ()))
        auth = UPSTREAM_AUTH.set(credentials.auth if credentials is not None else None)
        own = self._own_session(credentials)
        try:
            result = await self.request(
                "tools/call",
                params,
                tool=tool.name,
                deadline=invocation.deadline,
                connection=own,
                param_headers=mcp_param_headers(entry.param_headers, arguments)
                if entry.param_headers
                else None,
                capabilities=agent.capabilities if agent is not None else None,
            )
        finally:
            UPSTREAM_AUTH.reset(auth)
            self._progress.pop(token, None)
        if "content" in result:  # resource links and embedded resources: URIs namespaced
            result = {**result, "content": outward_content(self._namespace, result["content"])}
        return call_value(result, tool.name, agent)


def _connection_of(credentials: Credentials | None) -> str | None:
    """The id of the connection credentials were resolved from (the credentials layer's ``connection_id``)."""
    ident = getattr(credentials, "connection_id", None)
    return ident if isinstance(ident, str) else None


def _listed(entry: _Entry) -> dict[str, Any]:
    return {
        "annotations": entry.tool.meta.get("toolbridge/upstream", {}).get("annotations"),
        **entry.review.definition,
    }
