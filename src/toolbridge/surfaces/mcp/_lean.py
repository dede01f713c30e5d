"""The lean path: stateless-era (2026-07-28) ``tools/list`` and ``tools/call`` without the generic dispatcher.

(Handshake-era session requests are offered to ``_lean_session`` first.)

A 2026-07-28 request is one self-contained POST, so a well-formed ``tools/list`` or ``tools/call`` can
be answered straight from the :class:`Bridge`. The lean path takes only requests it can answer exactly
as the SDK would: the SDK's own classifier checks the envelope and routing headers, and anything
unusual (a rejection, an unknown field, ``Mcp-Param-*`` headers, a tool whose schema declares
``x-mcp-header``, SSE-only clients) is left to the SDK, which owns every error answer. The conformance
suite's stateless-era scenarios check the result.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

import anyio
from mcp.server.lowlevel.server import Server
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundModernRoute,
    classify_inbound_request,
)
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from toolbridge.connectors.mcp._tasks import declares_tasks
from toolbridge.surfaces.mcp._bridge import Bridge, CallContext
from toolbridge.surfaces.mcp._gate import Lean, request_info
from toolbridge.surfaces.mcp._wire import IDEMPOTENCY_META_KEYS, INTERNAL_ERROR, ProtocolError

__all__ = ["LeanPath"]

logger = logging.getLogger(__name__)

SERVER_INFO_META_KEY: Final = "io.modelcontextprotocol/serverInfo"
_PARAMS: Final = {"tools/list": frozenset({"_meta"}), "tools/call": frozenset({"_meta", "name", "arguments"})}
_META: Final = frozenset(
    {
        PROTOCOL_VERSION_META_KEY,
        CLIENT_CAPABILITIES_META_KEY,
        CLIENT_INFO_META_KEY,
        *IDEMPOTENCY_META_KEYS,
    }
)
_ROUTING_HEADERS: Final = (b"mcp-protocol-version", b"mcp-method", b"mcp-name")
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_COMPACT: Final = json.JSONEncoder(separators=(",", ":"))  # built once (json.dumps builds one per call)
T = TypeVar("T")
_WATCH_AFTER: Final = 0.05
"""Seconds a tools/call runs before toolbridge watches for its client going away (its cancellation)."""


class LeanPath:
    """Answers plain stateless-era tool requests; returns False for anything it leaves to the SDK."""

    def __init__(self, bridge: Bridge, server: Server[Any], sessions: Lean | None = None) -> None:
        self.bridge = bridge
        self.sessions = sessions
        """The lean path of handshake-era sessions (``_lean_session``), asked first for their requests."""
        self._server_info = server.server_info.model_dump(by_alias=True, mode="json", exclude_none=True)
        self._header_tools: dict[str, bool] = {}

    async def __call__(
        self, scope: Scope, headers: Headers, body: bytes, send: Send, receive: Receive
    ) -> bool:
        modern = headers.get(MCP_PROTOCOL_VERSION_HEADER) in MODERN_PROTOCOL_VERSIONS
        if not modern:
            return self.sessions is not None and await self.sessions(scope, headers, body, send, receive)
        if not _plain_http(scope, headers):
            return False
        message = _decode(body)
        if message is None or _classify(message, headers) is None:
            return False
        info = request_info(scope)
        if info is None:
            return False
        ctx = CallContext(info.principal, info.request_id, modern=True)
        if message["method"] == "tools/call":
            if self._declares_headers(ctx, message["params"]) or _declares_tasks(message["params"]):
                return False
            answer = await _unless_gone(receive, self._answer(ctx, message))
            if answer is not None:
                await _respond(send, answer)
            return True
        await _respond(send, await self._answer(ctx, message))
        return True

    async def _answer(self, ctx: CallContext, message: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        request_id = message["id"]
        try:
            result = await self._result(ctx, message["method"], message["params"])
        except ProtocolError as exc:
            return _error(request_id, exc.code, exc.message, exc.data)
        except Exception:  # top-level handler of this request, as in the SDK: log it, answer a generic error
            logger.exception("MCP %s failed", message["method"])
            return _error(request_id, INTERNAL_ERROR, "Internal server error")
        return 200, {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _result(self, ctx: CallContext, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if method == "tools/list":
            result = self.bridge.list_tools(ctx.principal)
        else:
            result = await self.bridge.call_tool(ctx, params)
        meta = dict(result.get("_meta") or {})
        meta[SERVER_INFO_META_KEY] = dict(self._server_info)
        return {**result, "_meta": meta}

    def _declares_headers(self, ctx: CallContext, params: Mapping[str, Any]) -> bool:
        """Whether the tool's schema maps arguments to ``Mcp-Param-*`` headers (the SDK checks those)."""
        name = params["name"]
        known = self._header_tools.get(name)
        if known is None:
            schema = self.bridge.input_schema(ctx.principal, name)
            # default=dict: a schema may hold read-only mappings (a capability's does)
            known = schema is not None and "x-mcp-header" in json.dumps(schema, default=dict)
            if schema is not None:
                self._header_tools[name] = known
        return known


def _declares_tasks(params: Mapping[str, Any]) -> bool:
    """Whether a call declares the tasks extension (the SDK's path routes the task it may make)."""
    return declares_tasks(params["_meta"].get(CLIENT_CAPABILITIES_META_KEY)) if "_meta" in params else False


async def _unless_gone(receive: Receive, answer: Awaitable[T]) -> T | None:
    """``answer``, unless the client closes the request first: in the 2026-07-28 era that is how a
    client cancels, so the call is cancelled (and with it the upstream request).

    The watcher starts only once the call has run :data:`_WATCH_AFTER` seconds: most calls end sooner,
    and a watcher task per call (spawned, then cancelled) cost ~40-180 µs on the benchmark machine, a
    quarter of the proxy's whole overhead. A timer costs a few µs. (asyncio's own timer: anyio has none;
    the lean path runs under uvicorn, on asyncio.)
    """
    loop = asyncio.get_running_loop()
    watchers: list[asyncio.Task[None]] = []
    with anyio.CancelScope() as scope:

        async def watch() -> None:
            while (await receive()).get("type") != "http.disconnect":
                pass
            scope.cancel()

        timer = loop.call_later(_WATCH_AFTER, lambda: watchers.append(loop.create_task(watch())))
        try:
            return await answer
        finally:
            timer.cancel()
            for watcher in watchers:
                watcher.cancel()
    return None


def _plain_http(scope: Scope, headers: Headers) -> bool:
    """A JSON POST that accepts a JSON answer and repeats no routing header or carries no param header."""
    if scope["method"] != "POST":
        return False
    if not headers.get("content-type", "").lower().startswith("application/json"):
        return False
    if not _accepts_json(headers.get("accept", "")):
        return False
    seen: set[bytes] = set()
    for name, _ in scope["headers"]:
        if name.startswith(b"mcp-param-"):
            return False
        if name in _ROUTING_HEADERS:
            if name in seen:
                return False
            seen.add(name)
    return True


@functools.lru_cache(maxsize=64)
def _accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` value takes a JSON answer (a client sends the same value every time)."""
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return any(a in ("application/json", "application/*", "*/*") for a in types)


def _decode(body: bytes) -> dict[str, Any] | None:
    """The request, if it is a plain JSON-RPC tools/list or tools/call with only the fields we serve."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if (
        not isinstance(message, dict)
        or message.get("jsonrpc") != "2.0"
        or set(message) != {"jsonrpc", "id", "method", "params"}
    ):
        return None
    request_id, method, params = message["id"], message["method"], message["params"]
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    allowed = _PARAMS.get(method) if isinstance(method, str) else None
    if allowed is None or not isinstance(params, dict) or not set(params) <= allowed:
        return None
    if method == "tools/call" and not _call_params(params):
        return None
    meta = params.get("_meta")
    if not isinstance(meta, dict) or not set(meta) <= _META:
        return None
    return message


def _call_params(params: Mapping[str, Any]) -> bool:
    arguments = params.get("arguments")
    return isinstance(params.get("name"), str) and (arguments is None or isinstance(arguments, dict))


def _classify(message: Mapping[str, Any], headers: Headers) -> InboundModernRoute | None:
    """The SDK's verdict on the envelope and routing headers, when it accepts them and they are plain."""
    verdict = classify_inbound_request(message, headers=headers)
    if not isinstance(verdict, InboundModernRoute) or not isinstance(verdict.client_capabilities, dict):
        return None
    info = verdict.client_info
    if info is not None and not (
        isinstance(info, dict) and isinstance(info.get("name"), str) and isinstance(info.get("version"), str)
    ):
        return None
    return verdict


def _error(request_id: Any, code: int, message: str, data: Any = None) -> tuple[int, dict[str, Any]]:
    """A JSON-RPC error and the HTTP status the SDK gives its code."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return ERROR_CODE_HTTP_STATUS.get(code, 200), {"jsonrpc": "2.0", "id": request_id, "error": error}


async def _respond(send: Send, answer: tuple[int, dict[str, Any]]) -> None:
    status, payload = answer
    body = _COMPACT.encode(payload).encode()
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
