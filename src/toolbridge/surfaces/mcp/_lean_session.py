"""The lean path for handshake-era (2025-11-25) sessions: a plain ``tools/call`` on an established session.

Through the SDK, every session request is parsed into pydantic models, handed over memory streams to the
session's dispatcher task, run by a task of its own through the server runner's context, validation
and middleware, and its answer handed back the same way: about twice the CPU of the stateless lean path.
Here a plain call is answered in the HTTP request's own task, with the pieces that make it the same
call: the session's owner, its idle clock, its client (capabilities, log level, the GET stream that
carries what an upstream asks or logs mid-call), cancellation by ``notifications/cancelled`` and by
the session's end, the SDK's shaping of the result for the session's protocol version and its error
envelopes.

Everything else goes to the SDK: ``initialize``, notifications, GET streams, DELETE, a request with
``progressToken`` or ``task``, an unknown session, a session whose handshake did not complete, any
request this module cannot classify, and a session's first request after ``initialize`` (with it the
SDK's middleware records the client, whose session object this path then uses). Like the stateless
lean path it skips the SDK's OpenTelemetry server middleware. It reads a few private attributes of the
SDK's session manager and transport (the session table and owners, the in-flight count behind the idle
timeout); if they are missing (another SDK version) every request goes to the SDK.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import REQUEST_CANCELLED
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import cancelled_request_id_from_params, handler_exception_to_error_data
from mcp_types import methods as _methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from toolbridge.connectors._events import CALL_EVENTS
from toolbridge.surfaces.mcp._bridge import Bridge, CallContext
from toolbridge.surfaces.mcp._gate import request_info
from toolbridge.surfaces.mcp._server import call_events
from toolbridge.surfaces.mcp._wire import IDEMPOTENCY_META_KEYS, ProtocolError

if TYPE_CHECKING:
    from mcp.server.lowlevel.server import Server
    from mcp.server.session import ServerSession
    from mcp.server.streamable_http import StreamableHTTPServerTransport
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from toolbridge.surfaces.mcp._notify import Notifier

__all__ = ["SessionPath"]

logger = logging.getLogger(__name__)

_CALL_PARAMS: Final = frozenset({"name", "arguments", "_meta"})
_META: Final = frozenset(IDEMPOTENCY_META_KEYS)
_CANCELLED: Final = types.ErrorData(code=REQUEST_CANCELLED, message="Request cancelled")
_INVALID_RESULT: Final = types.ErrorData(
    code=types.INTERNAL_ERROR, message="Handler returned an invalid result"
)
_ENDED: Final = types.ErrorData(
    code=types.INTERNAL_ERROR, message="Session terminated before the request completed"
)


@dataclass(slots=True)
class _Running:
    """A lean call in flight: its cancel scope and why it was cancelled (None: it was not)."""

    scope: anyio.CancelScope
    why: types.ErrorData | None = None


class SessionPath:
    """Answers plain ``tools/call`` requests of established handshake-era sessions; returns False for
    anything it leaves to the SDK (see the module docstring)."""

    def __init__(
        self, bridge: Bridge, server: Server[Any], manager: StreamableHTTPSessionManager, notifier: Notifier
    ) -> None:
        self.bridge = bridge
        self.notifier = notifier
        self._manager = manager
        self._usable = (
            "tools/call" not in server.cache_hints
            and isinstance(getattr(manager, "_server_instances", None), dict)
            and isinstance(getattr(manager, "_session_owners", None), dict)
        )
        self._running: dict[str, dict[Any, _Running]] = {}

    async def __call__(
        self, scope: Scope, headers: Headers, body: bytes, send: Send, receive: Receive
    ) -> bool:
        method = scope["method"]
        session_id = headers.get("mcp-session-id")
        if not self._usable or not session_id or method not in ("POST", "DELETE"):
            return False
        version = headers.get("mcp-protocol-version")
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return False
        transport = self._owned(scope, session_id)
        if transport is None:
            return False
        if method == "DELETE":  # the SDK ends the session; its lean calls end with it, as its own do
            self._cancel_all(session_id, _ENDED)
            return False
        message = _decode(body)
        if message is None:
            return False
        if message["method"] == "notifications/cancelled":
            self._cancel(session_id, message.get("params"))
            return False  # the SDK still takes it (202, and its own requests of that id)
        session = self.notifier.session_of(f"http:{session_id}")
        if (
            message["method"] != "tools/call"
            or session is None
            or session.client_params is None  # the handshake did not complete: the SDK refuses
            or session.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS
            or not _plain_post(headers)
        ):
            return False
        clock = _IdleClock.of(transport)
        if clock is None:
            return False
        with clock:
            error, result = await self._call(scope, session_id, session, message)
        if error is _ENDED:  # the SDK's answer when the session ends under a request: no id, HTTP 500
            await _respond(send, session_id, None, error, None, status=500)
        else:
            await _respond(send, session_id, message["id"], error, result)
        return True

    def _owned(self, scope: Scope, session_id: str) -> StreamableHTTPServerTransport | None:
        """The session's live transport, if the caller is the session's owner (the SDK's own check)."""
        transport = self._manager._server_instances.get(session_id)
        if transport is None or transport.is_terminated:
            return None
        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        if requestor != self._manager._session_owners.get(session_id):
            return None
        return transport

    async def _call(
        self, scope: Scope, session_id: str, session: ServerSession, message: Mapping[str, Any]
    ) -> tuple[types.ErrorData | None, dict[str, Any] | None]:
        info = request_info(scope)
        assert info is not None  # the Gate put it there before any lean path runs
        request_id, params = message["id"], message["params"]
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=session,
            lifespan_context=None,
            protocol_version=session.protocol_version,
            method="tools/call",
            params=params,
            request_id=request_id,
            meta=params.get("_meta"),
            request=Request(scope),
        )
        running = _Running(anyio.CancelScope())
        calls = self._running.setdefault(session_id, {})
        key = coerce_request_id(request_id)
        calls[key] = running
        token = CALL_EVENTS.set(call_events(ctx, self.notifier))
        outcome: tuple[types.ErrorData | None, dict[str, Any] | None] = (_ENDED, None)
        try:
            with running.scope:
                outcome = await self._outcome(CallContext(info.principal, info.request_id), session, params)
        finally:
            CALL_EVENTS.reset(token)
            if calls.get(key) is running:
                del calls[key]
            if not calls and self._running.get(session_id) is calls:
                del self._running[session_id]
        if running.why is not None:  # cancelled, even if done by now: answered as the SDK answers that
            return running.why, None
        return outcome

    async def _outcome(
        self, caller: CallContext, session: ServerSession, params: Mapping[str, Any]
    ) -> tuple[types.ErrorData | None, dict[str, Any] | None]:
        """The call's result shaped for the session's version, or the SDK's error for what went wrong."""
        try:
            result = await self.bridge.call_tool(caller, params)  # (no ``task``: never a created task)
            return None, _methods.serialize_server_result("tools/call", session.protocol_version, result)
        except ProtocolError as exc:
            return MCPError(exc.code, exc.message, exc.data).error, None
        except ValidationError:  # the SDK's check of the result
            logger.exception("handler for 'tools/call' returned an invalid result")
            return _INVALID_RESULT, None
        except Exception as exc:  # the SDK's catch-all for a handler that raised
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("handler for %r raised", "tools/call")
                error = types.ErrorData(code=0, message=str(exc))
            return error, None

    def _cancel(self, session_id: str, params: Any) -> None:
        request_id = cancelled_request_id_from_params(params if isinstance(params, Mapping) else None)
        running = self._running.get(session_id, {}).get(coerce_request_id(request_id)) if request_id else None
        if running is not None and running.why is None:
            running.why = _CANCELLED
            running.scope.cancel()

    def _cancel_all(self, session_id: str, why: types.ErrorData) -> None:
        for running in self._running.get(session_id, {}).values():
            if running.why is None:
                running.why = why
                running.scope.cancel()


class _IdleClock:
    """Holds the session's idle timeout while a lean call runs, as the SDK's transport does per request."""

    __slots__ = ("_transport",)

    def __init__(self, transport: StreamableHTTPServerTransport) -> None:
        self._transport = transport

    @classmethod
    def of(cls, transport: StreamableHTTPServerTransport) -> _IdleClock | None:
        """The clock, or None when the session is ending or the SDK keeps its count elsewhere."""
        idle = transport.idle_scope
        if idle is not None and idle.cancel_called:
            return None
        if not isinstance(getattr(transport, "_requests_in_flight", None), int):
            return None
        return cls(transport)

    def __enter__(self) -> None:
        transport = self._transport
        if transport.idle_scope is not None and transport._idle_timeout is not None:
            transport._requests_in_flight += 1
            transport.idle_scope.deadline = math.inf

    def __exit__(self, *_: object) -> None:
        transport = self._transport
        timeout = transport._idle_timeout
        if transport.idle_scope is not None and timeout is not None:
            transport._requests_in_flight -= 1
            if not transport._requests_in_flight:
                transport.idle_scope.deadline = anyio.current_time() + timeout


def _decode(body: bytes) -> dict[str, Any] | None:
    """A plain ``tools/call`` (only ``name``, ``arguments`` and idempotency ``_meta``) or a
    ``notifications/cancelled``, as the SDK's parser would read them; None for anything else."""
    try:
        message = json.loads(body.decode("utf-8"))  # the SDK reads UTF-8 only
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    method = message.get("method")
    if method == "notifications/cancelled":
        return message if set(message) <= {"jsonrpc", "method", "params"} else None
    if method != "tools/call" or set(message) != {"jsonrpc", "id", "method", "params"}:
        return None
    request_id, params = message["id"], message["params"]
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    if not isinstance(params, dict) or not set(params) <= _CALL_PARAMS:
        return None
    if not isinstance(params.get("name"), str):
        return None
    arguments, meta = params.get("arguments"), params.get("_meta", {})
    if not (arguments is None or isinstance(arguments, dict)):
        return None
    if not isinstance(meta, dict) or not set(meta) <= _META:
        return None
    return message


def _plain_post(headers: Headers) -> bool:
    """A JSON body the SDK's transport accepts, from a client that accepts a JSON answer."""
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("application/json"):
        return False
    if "application/json" not in (part.strip() for part in content_type.split(";")[0].split(",")):
        return False
    accept = [part.strip().split(";")[0].strip().lower() for part in headers.get("accept", "").split(",")]
    return any(a in ("application/json", "application/*", "*/*") for a in accept)


async def _respond(
    send: Send,
    session_id: str,
    request_id: Any,
    error: types.ErrorData | None,
    result: dict[str, Any] | None,
    *,
    status: int = 200,
) -> None:
    """The SDK's JSON answer to a session request: the same JSON-RPC bytes and headers."""
    message: types.JSONRPCResponse | types.JSONRPCError
    if error is None:
        message = types.JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result or {})
    else:
        message = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
    body = message.model_dump_json(by_alias=True, exclude_unset=True).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"mcp-session-id", session_id.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
