"""One upstream MCP session over a :class:`Channel`: the era negotiated, then requests and their results.

``auto`` probes ``server/discover`` at the newest stateless version (2026-07-28) and falls back to the
``initialize`` handshake (2025-11-25) on anything that is not positive evidence of a modern server, as the
SDK's own client does. A process (stdio) is never asked in both eras once it may have chosen one: its
probe is waited for (with progress in the log) up to ``start_timeout``, and a process that stayed silent
raises :class:`NoAnswer` — the connector starts a fresh one in the handshake era. In the stateless era
every request carries the ``_meta`` envelope and routing headers; in the handshake era the channel carries
the session (``Mcp-Session-Id`` over HTTP).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS

from toolbridge.connectors.mcp._channel import Channel, Message
from toolbridge.connectors.mcp._config import Protocol
from toolbridge.connectors.mcp._http import HttpChannel
from toolbridge.errors import UpstreamStatusError, UpstreamUnavailable

__all__ = ["NoAnswer", "RpcError", "Session"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_TASK_NAMED = {"tasks/get": "taskId", "tasks/update": "taskId", "tasks/cancel": "taskId"}
"""The tasks extension's methods, routed by ``Mcp-Name: <taskId>`` over streamable HTTP (SEP-2663)."""
_HANDSHAKE_TIMEOUT = 30.0
PROBE_TIMEOUT = 10.0
"""Seconds a ``server/discover`` probe waits before the handshake (HTTP) or a progress note (stdio)."""
_CANCEL_TIMEOUT = 2.0
_MAX_PAGES = 10_000
"""Pages of one list read at most: a bound for a server whose cursors never end (a repeated cursor ends
the list at once); a server paging 5 tools at a time lists 50,000."""
_UNSUPPORTED_VERSION = -32022
RELAYED_CAPABILITIES: Mapping[str, Any] = types.ClientCapabilities(
    sampling=types.SamplingCapability(),
    elicitation=types.ElicitationCapability(
        form=types.FormElicitationCapability(), url=types.UrlElicitationCapability()
    ),
    roots=types.RootsCapability(),
).model_dump(mode="json", by_alias=True, exclude_none=True)
"""What toolbridge declares in ``initialize`` (the handshake era): the requests it relays to the agent of the
call they belong to (``_inbound``), refused per agent when that agent cannot answer. Plain sampling (no
``tools`` or ``context``: an agent may not support them), both elicitation modes, roots without
``listChanged`` (an agent's list changes are not relayed upstream). In the stateless era no session holds
capabilities: each request carries those of the agent it is made for."""


class RpcError(Exception):
    """The upstream answered a request with a JSON-RPC error."""

    def __init__(
        self, code: int, message: str, data: object = None, answer: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{message} (JSON-RPC error {code})")
        self.code = code
        self.message = message
        self.data = data
        self.answer: dict[str, Any] = (
            dict(answer) if answer is not None else {"code": code, "message": message}
        )
        """The error object as the upstream sent it."""


class NoAnswer(UpstreamUnavailable):
    """A started process answered nothing within its start timeout (it may still be installing itself)."""


class Session:
    def __init__(
        self,
        channel: Channel,
        *,
        protocol: Protocol,
        client_info: Mapping[str, str],
        probe_timeout: float = PROBE_TIMEOUT,
        start_timeout: float | None = None,
        background: anyio.abc.TaskGroup | None = None,
        auth: httpx2.Auth | None = None,
    ) -> None:
        """``start_timeout`` (a process's channel): how long its first answer may take; None: not a process
        (an unanswered probe then falls back to the handshake on the same channel). ``background`` runs
        the ``notifications/cancelled`` of a cancelled request, so a frozen server cannot hold the
        caller past its deadline while the notice is sent (without it, the caller waits, up to 2 s).
        ``auth``: the credentials of the session's opener, which negotiate it (its channel ends it)."""
        self.channel = channel
        self._background = background
        self._protocol = protocol
        self._probe_timeout = probe_timeout
        self._start_timeout = start_timeout
        self._client_info = dict(client_info)
        self._ids = itertools.count(1)
        self.version = ""
        self.server_info: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.instructions: str | None = None
        self._auth = auth
        self._heard = False
        """Whether the upstream answered anything yet."""

    @property
    def modern(self) -> bool:
        return self.version in MODERN_PROTOCOL_VERSIONS

    @property
    def alive(self) -> bool:
        return self.channel.alive

    async def open(self) -> None:
        """Negotiate the protocol era (bounded in time), as the session's opener."""
        if self._protocol == "2025-11-25" or not await self._try_modern():
            await self._initialize()

    async def _first(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to a process's first request: waited for up to its start timeout, with a note in
        the log every probe timeout; silence raises :class:`NoAnswer`."""
        assert self._start_timeout is not None
        began = anyio.current_time()
        failed: Exception | None = None
        with anyio.move_on_after(self._start_timeout):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._note_waiting, method, began)
                try:
                    result = await self.request(method, params, cancellable=False, auth=self._auth)
                except (RpcError, UpstreamUnavailable, UpstreamStatusError) as exc:
                    failed = exc  # raised outside the task group (not as an exception group)
                tg.cancel_scope.cancel()
            if failed is not None:
                raise failed
            return result
        raise NoAnswer(
            f"{self.channel.describe} answered nothing to {method!r} in {self._start_timeout:g} s",
            sent=True,
            hint="a server that installs itself on its first run (npx, uvx) may need a longer "
            "start_timeout; otherwise run its command by hand to see why it does not answer",
        )

    async def _note_waiting(self, method: str, began: float) -> None:
        while True:
            await anyio.sleep(self._probe_timeout)
            logger.info(
                "still waiting for %s to answer %r (%.0f s of %g s; a first run may be installing it)",
                self.channel.describe,
                method,
                anyio.current_time() - began,
                self._start_timeout,
            )

    async def _ask(self, method: str, params: Mapping[str, Any], limit: float) -> dict[str, Any]:
        if self._start_timeout is not None and not self._heard:
            return await self._first(method, params)
        with anyio.fail_after(limit):
            return await self.request(method, params, cancellable=False, auth=self._auth)

    async def _try_modern(self) -> bool:
        version = MODERN_PROTOCOL_VERSIONS[-1]
        self.version = version  # stamp the probe as a stateless-era request
        try:
            limit = self._probe_timeout if self._protocol == "auto" else _HANDSHAKE_TIMEOUT
            result = await self._ask("server/discover", {}, limit)
        except (RpcError, UpstreamStatusError, TimeoutError) as exc:
            self.version = ""
            if self._protocol != "auto" or _modern_only(exc):
                raise
            return False
        supported = result.get("supportedVersions")
        if not isinstance(supported, list) or version not in supported:
            self.version = ""
            return False
        self.capabilities = _dict(result.get("capabilities"))
        self.server_info = _dict(_dict(result.get("_meta")).get("io.modelcontextprotocol/serverInfo"))
        self.instructions = (
            result.get("instructions") if isinstance(result.get("instructions"), str) else None
        )
        return True

    async def _initialize(self) -> None:
        self.channel.forget_session()
        params = {
            "protocolVersion": LATEST_HANDSHAKE_VERSION,
            "capabilities": RELAYED_CAPABILITIES,
            "clientInfo": self._client_info,
        }
        result = await self._ask("initialize", params, _HANDSHAKE_TIMEOUT)
        version = result.get("protocolVersion")
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise UpstreamUnavailable(
                f"{self.channel.describe} answered initialize with protocol version {version!r}, "
                f"which toolbridge does not speak ({', '.join(HANDSHAKE_PROTOCOL_VERSIONS)})",
                sent=True,
                hint="upgrade the server or pin the connector's protocol",
            )
        self.version = str(version)
        self.capabilities = _dict(result.get("capabilities"))
        self.server_info = _dict(result.get("serverInfo"))
        self.instructions = (
            result.get("instructions") if isinstance(result.get("instructions"), str) else None
        )
        await self.channel.notify(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, self._headers({}), auth=self._auth
        )

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        auth: httpx2.Auth | None = None,
        cancellable: bool = True,
        param_headers: Mapping[str, str] | None = None,
        capabilities: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The result of ``method``, signed by ``auth`` (HTTP); a JSON-RPC error raises :class:`RpcError`.

        ``param_headers`` (``Mcp-Param-*``, from ``x-mcp-header`` annotations) go with the request in the
        stateless era, the only one that defines them; so do ``capabilities``, the client capabilities
        the request declares (those of the agent it is made for, when toolbridge can relay its input
        requests; none otherwise).

        Cancelled while waiting (the call's deadline, or the agent went away), it tells the upstream
        with ``notifications/cancelled`` so the server can stop the work.
        """
        request_id = next(self._ids)
        message: Message = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": method,
            "params": self._stamp(params, capabilities),
        }
        headers = self._headers(message)
        if param_headers and self.modern:
            headers.update(param_headers)
        try:
            response = await self.channel.request(message, headers, auth=auth)
        except anyio.get_cancelled_exc_class():
            if cancellable and self._background is not None:
                self._background.start_soon(self._cancel, request_id, auth)
            elif cancellable:
                await self._cancel(request_id, auth)
            raise
        self._heard = True
        error = response.get("error")
        if isinstance(error, dict):
            raise RpcError(int(error.get("code", 0)), str(error.get("message", "")), error.get("data"), error)
        result = response.get("result")
        if not isinstance(result, dict):
            raise UpstreamUnavailable(
                f"{self.channel.describe} answered {method!r} without a result", sent=True
            )
        return result

    async def list_all(
        self, method: str, key: str, *, auth: httpx2.Auth | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a paginated list method (``tools/list`` → ``tools``), signed by ``auth``."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = await self.request(method, {"cursor": cursor} if cursor else {}, auth=auth)
            items.extend(item for item in page.get(key, []) if isinstance(item, dict))
            cursor = page.get("nextCursor") if isinstance(page.get("nextCursor"), str) else None
            if not cursor:
                return items
            if cursor in seen:
                logger.warning(
                    "%s gave the cursor %r of %s twice: its list is taken as ending there (%d %s)",
                    self.channel.describe,
                    cursor[:80],
                    method,
                    len(items),
                    key,
                )
                return items
            seen.add(cursor)
        logger.warning(
            "%s still had more %s after %d pages of %s: the first %d are used",
            self.channel.describe,
            key,
            _MAX_PAGES,
            method,
            len(items),
        )
        return items

    async def _cancel(self, request_id: int, auth: httpx2.Auth | None) -> None:
        if self.modern and isinstance(self.channel, HttpChannel):
            return  # stateless HTTP: the aborted POST is the signal
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": "the caller cancelled or its deadline passed"},
        }
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIMEOUT):
            try:
                await self.channel.notify(note, self._headers(note), auth=auth)
            except (UpstreamUnavailable, UpstreamStatusError) as exc:
                logger.debug("could not tell %s about a cancellation: %s", self.channel.describe, exc)

    def _stamp(self, params: Mapping[str, Any], capabilities: Mapping[str, Any] | None) -> dict[str, Any]:
        if not self.modern:
            return dict(params)
        meta = dict(params.get("_meta") or {})
        meta[PROTOCOL_VERSION_META_KEY] = self.version
        meta[CLIENT_CAPABILITIES_META_KEY] = dict(capabilities or {})
        meta[CLIENT_INFO_META_KEY] = self._client_info
        return {**params, "_meta": meta}

    def _headers(self, message: Message) -> dict[str, str]:
        if not self.version:
            return {}
        headers = {MCP_PROTOCOL_VERSION_HEADER: self.version}
        method = message.get("method")
        if self.modern and isinstance(method, str):
            headers[MCP_METHOD_HEADER] = method
            key = NAME_BEARING_METHODS.get(method) or _TASK_NAMED.get(method)
            name = message.get("params", {}).get(key) if key else None
            if isinstance(name, str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
        return headers

    async def aclose(self) -> None:
        await self.channel.aclose()  # the channel ends the session as its opener (HTTP DELETE)


def _modern_only(exc: Exception) -> bool:
    """A -32022 naming only stateless-era versions: the server cannot speak the handshake era."""
    if not isinstance(exc, RpcError) or exc.code != _UNSUPPORTED_VERSION or not isinstance(exc.data, dict):
        return False
    supported = exc.data.get("supported")
    return isinstance(supported, list) and not any(v in HANDSHAKE_PROTOCOL_VERSIONS for v in supported)


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
