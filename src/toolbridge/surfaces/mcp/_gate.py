"""The HTTP checks in front of the MCP endpoint: Origin, body size, API key, request id.

Every request is authenticated on its own; a session id never stands in for a key. The principal and
the request id travel to the handlers in the ASGI scope (under :data:`SCOPE_KEY`), and the principal
also as ``scope["user"]`` so the SDK's session manager refuses a session to anyone but its creator.
A JSON-RPC batch on a 2025-03-26 session is served here, each of its messages as a POST of its own
(see ``_batch``).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.shared.dispatcher import coerce_request_id
from mcp_types import INVALID_REQUEST, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolbridge._trace import continued, incoming
from toolbridge.errors import AuthenticationError, CallerError, ToolbridgeError, problem
from toolbridge.surfaces._ows import without_ows
from toolbridge.surfaces._request import (
    RequestHeaders,
    api_key,
    check_size,
    declared_length,
    presents_key,
    read_body,
)
from toolbridge.surfaces.mcp._batch import BATCH_VERSION, BatchSessions, batch_of, batch_refusal, serve_batch
from toolbridge.surfaces.mcp._wire import INVALID_REQUEST_BODY, RequestIds, is_jsonrpc_message, params_refusal

if TYPE_CHECKING:
    from toolbridge import Hub, Principal

__all__ = [
    "CURRENT_PRINCIPAL",
    "SCOPE_KEY",
    "Gate",
    "OriginNotAllowed",
    "OriginPolicy",
    "RequestInfo",
    "api_key",
    "is_loopback",
    "request_info",
]

SCOPE_KEY = "toolbridge.mcp"
CURRENT_PRINCIPAL: ContextVar[Principal | None] = ContextVar("toolbridge_mcp_principal", default=None)
"""The caller of the request being served in this task (for SDK hooks that get no request)."""

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})

Lean = Callable[[Scope, Headers, bytes, Send, Receive], Awaitable[bool]]
"""Answers a request itself and returns True, or returns False to leave it to the SDK."""


class OriginNotAllowed(CallerError):
    """A browser page from a foreign origin (or a DNS-rebinding page) called the endpoint."""

    code = "origin_not_allowed"
    status = 403
    title = "origin not allowed"


@dataclass(frozen=True, slots=True)
class RequestInfo:
    principal: Principal
    request_id: str


def request_info(scope: Scope) -> RequestInfo | None:
    info = scope.get(SCOPE_KEY)
    return info if isinstance(info, RequestInfo) else None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OriginPolicy:
    """Which browser origins may call: loopback pages, the configured origins, and the same host.

    "Same host" (the Origin names the Host the request was sent to) does not count on a loopback
    socket: there a DNS-rebinding page controls both headers, so only loopback origins and the
    configured ones pass.
    """

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self._any = "*" in allowed
        self._allowed = frozenset(o.strip().rstrip("/").lower() for o in allowed if o != "*")

    def allows(self, origin: str | None, host: str | None, server: tuple[str, int] | None) -> bool:
        if origin is None:
            return True  # not a browser, or a same-origin GET: nothing to check
        origin = origin.strip().rstrip("/").lower()
        if self._any or origin in self._allowed:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            return False
        if is_loopback(parts.hostname):
            return True
        if host is None or server is None or is_loopback(server[0]):
            return False
        return parts.netloc == host.strip().lower()


class Gate:
    """ASGI middleware: the checks above, then the wrapped app (or the lean path)."""

    def __init__(
        self,
        app: ASGIApp,
        hub: Hub,
        *,
        origins: OriginPolicy,
        max_body_bytes: int,
        anonymous: Principal | None = None,
        lean: Lean | None = None,
    ) -> None:
        self.app = app
        self.hub = hub
        self.origins = origins
        self.max_body_bytes = max_body_bytes
        self.anonymous = anonymous
        self.lean = lean
        self._request_ids = RequestIds()
        self._in_flight: set[tuple[str, str, str | int]] = set()
        self._batch_sessions = BatchSessions()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with continued(incoming(scope["headers"])):  # a caller's traceparent: its trace goes on here
            await self._gated(scope, receive, send)

    async def _gated(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = without_ows(scope)  # also here: the surface may be mounted without create_app
        headers = RequestHeaders(scope=scope)
        request_id = self._request_ids.from_header(headers.get("x-request-id"))
        send = _stamping(send, request_id)
        try:
            self._check_origin(scope, headers)
            body = await self._read_body(headers, receive)
            principal = await self._authenticate(headers, request_id)
        except ToolbridgeError as exc:  # refused (4xx), or the key store is down (503)
            await _send_problem(send, exc)
            return
        if body is None:
            return  # the client went away while sending
        scope = {**scope, SCOPE_KEY: RequestInfo(principal, request_id), "user": _user(principal)}
        refusal = _unknown_version(headers) or (
            _unservable_post(headers) if scope["method"] == "POST" else None
        )
        if refusal is not None:  # the SDK's answers: about _meta, plain text, an empty 406
            status, error = refusal
            answer = {"jsonrpc": "2.0", "id": _request_id_of(body), "error": error}
            await _send_json(send, status, json.dumps(answer).encode())
            return
        if scope["method"] == "POST" and (elements := batch_of(body)) is not None:
            await self._batch(scope, headers, elements, send, receive, principal)
            return
        await self._one(scope, headers, body, send, receive, principal)

    async def _one(
        self, scope: Scope, headers: Headers, body: bytes, send: Send, receive: Receive, principal: Principal
    ) -> None:
        """One message (or a GET, a DELETE): served on the lean path or by the SDK."""
        if scope["method"] == "POST" and (refusal_body := params_refusal(body)) is not None:
            await _send_json(send, 400, refusal_body)
            return
        held = None
        if _handshake_era(headers) and scope["method"] == "POST":
            if not is_jsonrpc_message(body):
                await _send_json(send, 400, INVALID_REQUEST_BODY)  # the SDK would answer -32602 here
                return
            held = _session_request(principal, headers, body)
            if held is not None and _same_id(held) in self._in_flight:
                await _send_json(send, 400, _id_in_use(held[2]))
                return
            if "mcp-session-id" not in headers and _is_initialize(body):
                send = self._batch_sessions.watching(principal.id, send)
        token = CURRENT_PRINCIPAL.set(principal)
        if held is not None:
            self._in_flight.add(_same_id(held))
        try:
            if self.lean is not None and await self.lean(scope, headers, body, send, receive):
                return
            await self.app(scope, _replaying(body, receive), send)
        finally:
            CURRENT_PRINCIPAL.reset(token)
            if held is not None:
                self._in_flight.discard(_same_id(held))

    async def _batch(
        self,
        scope: Scope,
        headers: Headers,
        elements: list[Any],
        send: Send,
        receive: Receive,
        principal: Principal,
    ) -> None:
        """A JSON-RPC batch (see ``_batch``): each message served as a POST of its own, on a session that
        negotiated 2025-03-26; refused as a whole anywhere else."""
        session_id = headers.get("mcp-session-id")
        version = headers.get("mcp-protocol-version")
        if (
            not elements
            or version not in (None, BATCH_VERSION)
            or not self._batch_sessions.allows(session_id, principal.id)
        ):
            await _send_json(send, 400, json.dumps(batch_refusal(elements, version)).encode())
            return

        async def serve_one(body: bytes, answer: Send) -> None:
            one = {**scope, "headers": _with_length(scope["headers"], len(body))}
            await self._one(one, RequestHeaders(scope=one), body, answer, receive, principal)

        status, body = await serve_batch(elements, serve_one)
        extra = [(b"mcp-session-id", session_id.encode("latin-1"))] if session_id else []
        if body is None:
            await send({"type": "http.response.start", "status": status, "headers": extra})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _send_json(send, status, body, extra=extra)

    def _check_origin(self, scope: Scope, headers: Headers) -> None:
        origin = headers.get("origin")
        if not self.origins.allows(origin, headers.get("host"), scope.get("server")):
            raise OriginNotAllowed(
                f"requests from the web origin {origin!r} are not allowed",
                hint="add the origin to the MCP surface's allowed_origins, or call from a non-browser client",
            )

    async def _read_body(self, headers: Headers, receive: Receive) -> bytes | None:
        """The body, or None when the client went away before sending all of it."""
        declared = declared_length(headers)
        if declared is not None:
            check_size(declared, limit=self.max_body_bytes)  # refused before reading
        first = await receive()
        if first["type"] == "http.request" and not first.get("more_body", False):
            body: bytes = first.get("body", b"")  # whole in one message, as a small request comes
            check_size(len(body), limit=self.max_body_bytes)
            return body
        gone = False

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal gone
            message = first
            while True:
                if message["type"] != "http.request":
                    gone = True
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return
                message = await receive()

        whole = await read_body(chunks(), limit=self.max_body_bytes)
        return None if gone else whole

    async def _authenticate(self, headers: Headers, request_id: str) -> Principal:
        key = api_key(headers)
        if self.anonymous is not None and not presents_key(headers):
            return self.anonymous  # a credential that is present but unusable never falls back to this
        return await self.hub.authenticate(key, request_id=request_id)


def _user(principal: Principal) -> AuthenticatedUser:
    """The principal as the SDK sees it: sessions are bound to ``client_id``."""
    return _user_of(principal.id)


@functools.lru_cache(maxsize=1024)
def _user_of(principal_id: str) -> AuthenticatedUser:
    """(One per principal, not one per request: building the SDK's token model is most of the cost; the
    SDK only reads it.)"""
    return AuthenticatedUser(AccessToken(token="", client_id=principal_id, scopes=[], subject=principal_id))


def _is_initialize(body: bytes) -> bool:
    if b'"initialize"' not in body:
        return False
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(message, dict) and message.get("method") == "initialize"


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Content-Length`` set to ``length`` (a batch's message, served as a POST)."""
    kept = [(name, value) for name, value in headers if name != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _stamping(send: Send, request_id: str) -> Send:
    """``send`` that adds ``X-Request-Id`` to the response, so callers can find their audit rows."""
    header = (b"x-request-id", request_id.encode("latin-1"))

    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return stamped


def _handshake_era(headers: Headers) -> bool:
    """Whether the SDK serves this request on its handshake-era (2025) path."""
    version = headers.get("mcp-protocol-version")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


async def _send_problem(send: Send, exc: ToolbridgeError) -> None:
    extra = (
        [(b"www-authenticate", b'Bearer realm="toolbridge"')] if isinstance(exc, AuthenticationError) else []
    )
    await _send_json(send, exc.status, json.dumps(problem(exc)).encode(), b"application/problem+json", extra)


def _unknown_version(headers: Headers) -> tuple[int, dict[str, object]] | None:
    """A session's request with a protocol version header this server does not speak: the SDK answered
    it about ``params._meta`` (a request without a session is the SDK's to answer, as it does well)."""
    asked = headers.get("mcp-protocol-version")
    if asked is None or asked in _VERSIONS or "mcp-session-id" not in headers:
        return None
    return 400, {
        "code": UNSUPPORTED_PROTOCOL_VERSION,
        "message": f"Unsupported protocol version: MCP-Protocol-Version is {asked!r}; a session's requests "
        f"carry the version it was opened with (one of {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)})",
        "data": {"supported": list(HANDSHAKE_PROTOCOL_VERSIONS), "requested": asked},
    }


_VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)


def _unservable_post(headers: Headers) -> tuple[int, dict[str, object]] | None:
    """A POST whose body is not declared JSON (400), or whose client accepts neither JSON nor an event
    stream (406), answered as a JSON-RPC error that names the header to send."""
    kind = headers.get("content-type")
    if kind is None or not kind.lower().startswith("application/json"):
        got = f"{kind!r}" if kind is not None else "none"
        return 400, _rpc_error(
            f"Invalid Request: send the JSON-RPC message with 'Content-Type: application/json' (got {got})"
        )
    accept = headers.get("accept")
    if accept is not None and not _ACCEPTABLE.search(accept):
        return 406, _rpc_error(
            f"Not Acceptable: send 'Accept: application/json, text/event-stream' (got {accept!r}): answers "
            "come as JSON or as an event stream"
        )
    return None


_ACCEPTABLE = re.compile(r"(^|[,\s])(application/json|text/event-stream|application/\*|\*/\*)", re.IGNORECASE)


def _rpc_error(message: str) -> dict[str, object]:
    return {"code": INVALID_REQUEST, "message": message}


def _session_request(
    principal: Principal, headers: Headers, body: bytes
) -> tuple[str, str, str | int] | None:
    """(caller, session, id) of a request on a 2025-11-25 session, None for anything else.

    A session's requests must have ids unused in it (the requester's MUST); one that reuses the id of a
    request still in flight made the SDK's transport route both answers to the second request's stream,
    so the first never got its answer (its client waited until its timeout, its effect done). The
    duplicate is refused while the first runs; an id reused after its answer harms nothing over HTTP
    (each POST carries its own) and is served."""
    session = headers.get("mcp-session-id")
    if session is None:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    found = message.get("id")
    if isinstance(found, bool) or not isinstance(found, str | int):
        return None  # a notification (ids of other types were refused before)
    return principal.id, session, found


def _same_id(held: tuple[str, str, str | int]) -> tuple[str, str, str | int]:
    """``held`` with its id as the SDK correlates it: ``"5"`` is 5 to its dispatcher, and its transport
    keys answer streams by ``str(id)``; so 5 and ``"5"`` in flight at once took each other's answers."""
    caller, session, request_id = held
    return caller, session, coerce_request_id(request_id)


def _id_in_use(request_id: str | int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "error": {
                "code": INVALID_REQUEST,
                "message": f"Invalid Request: the id {request_id!r} belongs to a request of this session "
                "that is still in flight; give each request of a session an id of its own (a counter)",
            },
        }
    ).encode()


def _request_id_of(body: bytes | None) -> str | int | None:
    """The JSON-RPC id of the request in ``body``, when it has a usable one (an error answer carries it)."""
    try:
        message = json.loads(body or b"")
    except (ValueError, RecursionError):
        return None
    found = message.get("id") if isinstance(message, dict) else None
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


async def _send_json(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
