"""Opening an upstream session: the channel for the server, the transport and the protocol era.

``transport: auto`` POSTs first (streamable HTTP); a 400, 404 or 405 makes it GET the URL as a legacy SSE
stream (the MCP specification's backwards-compatibility rule), remembering what worked. ``protocol:
auto`` probes the stateless era first (see ``_session``); a process that stayed silent is started again
in the handshake era. Failures come out as the errors the call path acts on, counted in the connector's
:class:`~._restarts.Restarts` when they concern the shared session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

import anyio.abc
import httpx2

from toolbridge._redact import forms
from toolbridge.connectors._fastpath import FastTransport
from toolbridge.connectors.mcp._channel import Channel, OnMessage, SessionExpired
from toolbridge.connectors.mcp._config import HttpServer, Protocol, StdioServer, Transport
from toolbridge.connectors.mcp._http import HttpChannel
from toolbridge.connectors.mcp._restarts import Restarts
from toolbridge.connectors.mcp._session import NoAnswer, RpcError, Session
from toolbridge.connectors.mcp._sse import SseChannel
from toolbridge.connectors.mcp._stdio import StdioChannel
from toolbridge.errors import ConfigurationError, ToolbridgeError, UpstreamStatusError, UpstreamUnavailable

__all__ = ["AUTH_STATUSES", "Opener"]

logger = logging.getLogger("toolbridge.connectors.mcp")

AUTH_STATUSES = frozenset({401, 403})
_LEGACY_STATUSES = frozenset({400, 404, 405})
"""A streamable HTTP POST answered with these may be a legacy SSE server (MCP backwards compatibility)."""


class Opener:
    """Opens sessions with one upstream (``server``); the connector owns the task group and the backoff."""

    def __init__(
        self,
        name: str,
        server: StdioServer | HttpServer,
        *,
        restarts: Restarts,
        on_message: OnMessage,
        client_info: Mapping[str, str],
        probe_timeout: float,
        connection_env: Callable[[], Awaitable[Mapping[str, str]]] | None,
        learn_secrets: Callable[[str, Sequence[str]], None],
        secret_forms: Callable[[], Sequence[str]],
    ) -> None:
        """``learn_secrets`` remembers the forms of the secrets given to a stdio server's environment;
        ``secret_forms`` tells every form remembered, masked in what a stdio server writes."""
        self.name = name
        self.server = server
        self.restarts = restarts
        self._on_message = on_message
        self._client_info = dict(client_info)
        self._probe_timeout = probe_timeout
        self._connection_env = connection_env
        self._learn_secrets = learn_secrets
        self._secret_forms = secret_forms
        self.transport: Transport = "auto" if isinstance(server, StdioServer) else server.transport
        """How an HTTP upstream is spoken to; under ``auto``, what worked (``auto`` until something did)."""
        self.client: httpx2.AsyncClient | None = None
        """The connector's HTTP client, shared by every channel of an HTTP upstream (set while it runs)."""
        self.fast: FastTransport | None = None
        """The fast-path transport under ``client`` (unless a proxy or ``fast_path: false``), which
        channels call directly."""
        self.sessions_opened = 0
        """How many sessions were opened (with the shared one's replacements and per-connection ones)."""

    @property
    def where(self) -> str:
        if isinstance(self.server, StdioServer):
            return f"the stdio server {self.server.command!r}"
        return f"the MCP server at {self.server.url}"

    @contextlib.contextmanager
    def opening(self, *, shared: bool = True) -> Iterator[None]:
        """Failures to open a session, as the errors the call path acts on (``shared``: counted for the
        restart backoff)."""
        try:
            yield
        except ConfigurationError:
            raise
        except UpstreamStatusError as exc:
            if exc.upstream_status in AUTH_STATUSES:  # the credentials, not the upstream: refresh, or tell
                raise
            raise self.unavailable(exc, count=shared) from exc
        except (UpstreamUnavailable, RpcError, SessionExpired, TimeoutError) as exc:
            raise self.unavailable(exc, count=shared) from exc

    async def negotiate(self, tg: anyio.abc.TaskGroup, auth: httpx2.Auth | None) -> Session:
        """A session opened as ``auth`` (HTTP: its opener's credentials; None: none).

        ``transport: auto`` POSTs first (streamable HTTP); a 400, 404 or 405 makes it GET the URL as a
        legacy SSE stream (the MCP specification's backwards-compatibility rule). What worked is kept."""
        transport = self.transport
        if transport != "auto":
            return await self._handshake(tg, transport, auth)
        try:
            session = await self._handshake(tg, "streamable-http", auth)
        except UpstreamStatusError as exc:
            if exc.upstream_status not in _LEGACY_STATUSES or self.server.protocol == "2026-07-28":
                raise
            try:
                session = await self._handshake(tg, "sse", auth)
            except (UpstreamUnavailable, UpstreamStatusError) as legacy:
                if isinstance(legacy, UpstreamStatusError) and legacy.upstream_status in AUTH_STATUSES:
                    raise
                raise UpstreamUnavailable(
                    f"it refused a streamable HTTP POST (HTTP {exc.upstream_status}) and its GET opened "
                    f"no legacy SSE stream ({legacy})",
                    sent=False,
                    hint="check the URL (the MCP endpoint, or the SSE stream of a legacy server)",
                ) from legacy
            logger.info("connector %r: %s speaks the legacy SSE transport", self.name, self.where)
            self.transport = "sse"
            return session
        self.transport = "streamable-http"
        return session

    async def _handshake(
        self, tg: anyio.abc.TaskGroup, transport: Transport, auth: httpx2.Auth | None
    ) -> Session:
        protocol = self.server.protocol
        if transport == "sse" and protocol == "auto":
            protocol = "2025-11-25"  # the SSE transport predates the stateless era: no discover probe
        try:
            return await self._start(tg, transport, protocol, auth)
        except NoAnswer as exc:
            if protocol != "auto":
                raise
            # the silent process may yet answer the probe and so choose the stateless era: never ask
            # it to initialize; a fresh process is asked in the handshake era instead
            logger.warning("connector %r: %s; starting it again in the handshake era", self.name, exc)
            return await self._start(tg, transport, "2025-11-25", auth)

    async def _start(
        self, tg: anyio.abc.TaskGroup, transport: Transport, protocol: Protocol, auth: httpx2.Auth | None
    ) -> Session:
        channel = await self._channel(tg, transport, auth)
        stdio = self.server if isinstance(self.server, StdioServer) else None
        session = Session(
            channel,
            protocol=protocol,
            client_info=self._client_info,
            probe_timeout=self._probe_timeout,
            start_timeout=stdio.start_timeout if stdio is not None else None,
            background=tg,
            auth=auth,
        )
        try:
            await channel.start()
            await session.open()
        except BaseException:  # a failed or cancelled handshake: the session is not kept; re-raised
            await session.aclose()
            raise
        self.sessions_opened += 1
        return session

    async def _channel(
        self, tg: anyio.abc.TaskGroup, transport: Transport, auth: httpx2.Auth | None
    ) -> Channel:
        if isinstance(self.server, StdioServer):
            server = await self._stdio_server(self.server)
            return StdioChannel(server, tg, self._on_message, secrets=self._secret_forms())
        if transport == "sse":
            return SseChannel(self.server, tg, self._on_message, client=self.client, auth=auth)
        return HttpChannel(self.server, self._on_message, client=self.client, auth=auth, fast=self.fast)

    async def _stdio_server(self, server: StdioServer) -> StdioServer:
        """The server with its ``connection:`` environment values read from the connection, at each start."""
        if self._connection_env is None:
            return server
        try:
            extra = await self._connection_env()
        except ToolbridgeError as exc:  # not connected yet, or the connection needs a person
            raise self.no_connection(exc) from exc
        self._learn_secrets("env", forms(extra.values()))
        return dataclasses.replace(server, env={**server.env, **extra})

    def no_connection(self, exc: ToolbridgeError) -> UpstreamUnavailable:
        self.restarts.failed(exc.message)
        return UpstreamUnavailable(
            f"connector {self.name!r} has no usable connection: {exc.message}", sent=False, hint=exc.hint
        )

    def unavailable(self, exc: Exception, *, count: bool = True) -> UpstreamUnavailable:
        if count:
            self.restarts.failed(str(exc))
        return UpstreamUnavailable(
            f"cannot open a session with {self.where} (connector {self.name!r}): {exc}",
            sent=False,
            hint="check that the upstream MCP server runs and speaks MCP",
        )
