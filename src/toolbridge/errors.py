"""The one exception tree of toolbridge.

Branches are named after who must act to fix the problem::

    ToolbridgeError
    ├── ConfigurationError ........ the operator: a bad toolbridge.yaml, setting or registration
    │   └── ConfigFileError ....... with the file, line, key, choices and "did you mean"
    ├── CallerError ............... the caller (agent or program) must change its call
    │   ├── AuthenticationError ... no key, an unknown key or a revoked key (HTTP 401)
    │   ├── PermissionDenied ...... the principal lacks the scope for this tool (HTTP 403)
    │   ├── ToolQuarantined ....... an upstream tool changed since a person approved it (HTTP 403, ``diff``)
    │   ├── ToolNotFound .......... no such tool, or not visible to this principal (HTTP 404)
    │   ├── InvalidArguments ...... arguments do not match the tool's input schema (HTTP 422)
    │   ├── PayloadTooLarge ....... request body or arguments over the limit (HTTP 413)
    │   ├── RateLimited ........... the caller is over its own rate limit (HTTP 429, retry_after)
    │   ├── Conflict .............. an idempotency key still in flight, or a state conflict (HTTP 409)
    │   │   ├── KeyInFlight ....... the call holding this idempotency key is still running (``retry_after``)
    │   │   └── LeaseLost ......... a workspace write carried a lease that expired or was taken over
    │   ├── NotFound .............. no such object, or not visible to this principal (HTTP 404)
    │   ├── Locked ................ a workspace path is leased by another holder (HTTP 423, ``holder``)
    │   ├── PreconditionFailed .... expected version or ETag does not match (HTTP 412)
    │   │   └── ChecksumMismatch .. an upload chunk does not match its checksum (tus: HTTP 460)
    │   ├── QuotaExceeded ......... an agent's workspace credits are used up (HTTP 403)
    │   │   └── StorageQuotaExceeded  a workspace's byte quota would be exceeded (HTTP 507)
    │   ├── IdempotencyKeyReused .. an idempotency key sent again with different arguments (HTTP 422)
    │   ├── AuthorizationRejected . an OAuth callback failed a check: state, redirect URI, ``iss`` (HTTP 400)
    │   └── BadRequest ............ malformed request at a surface (HTTP 400)
    ├── CredentialsError .......... a person must reconnect the account (HTTP 401 upstream-side)
    │   └── NotConnected .......... no usable connection for this connector and account yet
    │       └── ConnectRequired ... the caller has no connection of its own: ``connect`` starts one
    ├── UpstreamError ............. the service behind the tool failed
    │   ├── UpstreamTimeout ....... the call's deadline passed before the tool answered (HTTP 504)
    │   ├── UpstreamUnavailable ... transport failure: refused, reset, timed out (``sent`` says if bytes left)
    │   ├── UpstreamStatusError ... the upstream answered with an error status (``status``, ``retry_after``)
    │   │   └── UpstreamRpcError .. an upstream MCP server's JSON-RPC error, kept whole in ``answer``
    │   ├── OutcomeUnknown ........ a write may or may not have happened; not retried automatically
    │   ├── CircuitOpen ........... the connector's breaker is open, or the connection is ejected (outlier
    │   │                           ejection); failing fast (HTTP 503, retry_after)
    │   ├── UpstreamBusy .......... the connector's concurrency limit is full (HTTP 503)
    │   ├── NoProviderAvailable ... every provider of a capability was skipped (HTTP 503, ``skipped``)
    │   ├── TokenRefreshFailed .... the token endpoint failed transiently; the connection stays usable
    │   ├── InputRequired ......... the upstream asks the caller for input it cannot give (HTTP 422)
    │   └── ToolExecutionError .... an in-process (Python) tool raised
    │       └── UpstreamToolError . an upstream MCP tool answered ``isError``, kept whole in ``answer``
    └── StorageError .............. the database could not be used

Every error carries a stable machine ``code``, an HTTP ``status``, a human ``message`` saying what was
wrong and where, and a ``hint`` saying what to do. :func:`toolbridge.errors.problem` turns any of them
into an RFC 9457 problem document; surfaces map to JSON-RPC from the same fields. Messages never carry
secret values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from toolbridge._suggest import did_you_mean

__all__ = [
    "AuthenticationError",
    "AuthorizationRejected",
    "BadRequest",
    "CallerError",
    "ChecksumMismatch",
    "CircuitOpen",
    "ConfigFileError",
    "ConfigurationError",
    "Conflict",
    "ConnectRequired",
    "CredentialsError",
    "IdempotencyKeyReused",
    "InputRequired",
    "InvalidArguments",
    "KeyInFlight",
    "LeaseLost",
    "Locked",
    "NoProviderAvailable",
    "NotConnected",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "PermissionDenied",
    "PreconditionFailed",
    "QuotaExceeded",
    "RateLimited",
    "StorageError",
    "StorageQuotaExceeded",
    "TokenRefreshFailed",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolQuarantined",
    "ToolbridgeError",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamRpcError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "did_you_mean",
    "from_problem",
    "http_status",
    "problem",
]

PROBLEM_BASE = "https://toolbridge.dev/problems/"


class ToolbridgeError(Exception):
    """Root of every error toolbridge raises on purpose."""

    code: ClassVar[str] = "toolbridge_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "toolbridge error"
    retried: bool = False
    """Set by the resilience layer on the failure it raises after retrying it: no other layer retries it
    again (a pipeline step's attempts would multiply the connector's)."""
    replayed: bool = False
    """Raised again from an idempotency key's stored outcome: the call was not run (``problem`` says so)."""

    def __init__(self, message: str, *, hint: str | None = None, tool: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.tool = tool

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def extra(self) -> dict[str, object]:
        """Machine-readable members added to the problem document (never secrets)."""
        return {}


class ConfigurationError(ToolbridgeError):
    """The operator must fix the configuration."""

    code = "configuration_error"
    status = 500
    title = "configuration error"


class ConfigFileError(ConfigurationError):
    """A mistake in a configuration file, located to its line."""

    code = "config_file_error"

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"{path}:{line}" if line is not None else path
        prefix = f"{where}: {key}: " if key else f"{where}: "
        super().__init__(prefix + message, hint=hint)
        self.path = path
        self.line = line
        self.key = key


class CallerError(ToolbridgeError):
    """The caller must change its call."""

    code = "bad_call"
    status = 400
    title = "bad call"


class BadRequest(CallerError):
    code = "bad_request"
    status = 400
    title = "bad request"


class AuthenticationError(CallerError):
    code = "unauthenticated"
    status = 401
    title = "authentication required"


class PermissionDenied(CallerError):
    code = "permission_denied"
    status = 403
    title = "permission denied"

    def __init__(
        self, message: str, *, missing_scope: str, hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.missing_scope = missing_scope

    def extra(self) -> dict[str, object]:
        return {"missing_scope": self.missing_scope}


class ToolQuarantined(CallerError):
    """The tool's upstream definition is not the one a person approved (or none was approved yet)."""

    code = "tool_quarantined"
    status = 403
    title = "tool quarantined"

    def __init__(
        self,
        message: str,
        *,
        diff: str | None = None,
        flags: Sequence[str] = (),
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.diff = diff
        self.flags = list(flags)

    def extra(self) -> dict[str, object]:
        doc: dict[str, object] = {}
        if self.diff:
            doc["diff"] = self.diff
        if self.flags:
            doc["flags"] = self.flags
        return doc


class ToolNotFound(CallerError):
    code = "tool_not_found"
    status = 404
    title = "no such tool"

    def __init__(self, name: str, *, suggestions: Iterable[str] = ()) -> None:
        self.suggestions = list(suggestions)
        hint = did_you_mean(self.suggestions) or "list the available tools with tools/list or GET /v1/tools"
        super().__init__(f"no tool named {name!r}", hint=hint, tool=name)

    def extra(self) -> dict[str, object]:
        return {"suggestions": self.suggestions}


class InvalidArguments(CallerError):
    code = "invalid_arguments"
    status = 422
    title = "invalid arguments"

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[Mapping[str, str]],
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.errors = [dict(e) for e in errors]

    def extra(self) -> dict[str, object]:
        return {"errors": self.errors}


class PayloadTooLarge(CallerError):
    code = "payload_too_large"
    status = 413
    title = "payload too large"

    def __init__(self, what: str, *, size: int, limit: int, hint: str | None = None) -> None:
        super().__init__(
            f"{what} is {size:,} bytes, over the limit of {limit:,} bytes",
            hint=hint or "send less data (large files belong in the workspace, referenced by path)",
        )
        self.size = size
        self.limit = limit

    def extra(self) -> dict[str, object]:
        return {"size": self.size, "limit": self.limit}


class RateLimited(CallerError):
    code = "rate_limited"
    status = 429
    title = "rate limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        policy: str | None = None,
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint or f"wait {retry_after:.3g} s before calling again", tool=tool)
        self.retry_after = retry_after
        self.policy = policy

    def extra(self) -> dict[str, object]:
        return {"retry_after": self.retry_after, **({"policy": self.policy} if self.policy else {})}


class Conflict(CallerError):
    code = "conflict"
    status = 409
    title = "conflict"


class KeyInFlight(Conflict):
    """Another call with this idempotency key is running; ``retry_after`` says when to ask again."""

    def __init__(
        self, message: str, *, retry_after: float, hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.retry_after = retry_after

    def extra(self) -> dict[str, object]:
        return {"retry_after": round(self.retry_after, 3)}


class IdempotencyKeyReused(CallerError):
    code = "idempotency_key_reused"
    status = 422
    title = "idempotency key reused with different arguments"


class LeaseLost(Conflict):
    """A write carried a lease token that is no longer the current lease (expired, released or replaced)."""

    code = "lease_lost"
    title = "lease lost"


class NotFound(CallerError):
    """No such object — or one the caller may not see: both give the same answer, so nothing leaks."""

    code = "not_found"
    status = 404
    title = "not found"


class Locked(CallerError):
    """Another holder has the lease on a workspace path. ``holder`` names the principal, never its token."""

    code = "locked"
    status = 423
    title = "locked"

    def __init__(
        self,
        message: str,
        *,
        holder: str,
        expires_in: float,
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.holder = holder
        self.expires_in = expires_in

    def extra(self) -> dict[str, object]:
        return {"holder": self.holder, "expires_in": round(self.expires_in, 3)}


class PreconditionFailed(CallerError):
    code = "precondition_failed"
    status = 412
    title = "precondition failed"

    def __init__(
        self, message: str, *, current: dict[str, object], hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.current = current

    def extra(self) -> dict[str, object]:
        return {"current": self.current}


class ChecksumMismatch(PreconditionFailed):
    """tus ``460 Checksum Mismatch``: the chunk was discarded; send it again."""

    code = "checksum_mismatch"
    status = 460
    title = "checksum mismatch"


class QuotaExceeded(CallerError):
    """A limit of the workspace (bytes) or of the agent (credits) would be exceeded."""

    code = "quota_exceeded"
    status = 403
    title = "quota exceeded"

    def __init__(
        self, message: str, *, limit_name: str, limit: int, used: int, hint: str, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.limit_name = limit_name
        self.limit = limit
        self.used = used

    def extra(self) -> dict[str, object]:
        return {"limit_name": self.limit_name, "limit": self.limit, "used": self.used}


class StorageQuotaExceeded(QuotaExceeded):
    """The write would take a workspace over its byte quota: 507 Insufficient Storage, as WebDAV answers
    a request that exceeds a collection's quota (RFC 4331 §6, RFC 4918 §11.5) — not 403 (the caller may
    write; the space is what is missing) nor 413 (a small write to a full workspace is not too large)."""

    status = 507


class AuthorizationRejected(CallerError):
    """An OAuth authorization response failed a check (state, redirect URI, issuer); nothing was stored."""

    code = "authorization_rejected"
    status = 400
    title = "authorization rejected"


class CredentialsError(ToolbridgeError):
    """The stored credentials no longer work: a person must reconnect the account."""

    code = "reconnect_required"
    status = 401
    title = "reconnect required"


class NotConnected(CredentialsError):
    """The connector needs credentials, and no usable connection exists for the account asked for."""

    code = "not_connected"
    title = "not connected"


class ConnectRequired(NotConnected):
    """A per-user connector, and the caller has no connection of its own: ``connect`` says how to start
    the OAuth flow (or add a secret) for exactly this caller."""

    code = "connect_required"
    title = "connect required"

    def __init__(
        self, message: str, *, connect: Mapping[str, object], hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.connect = dict(connect)

    def extra(self) -> dict[str, object]:
        return {"connect": self.connect}


class UpstreamError(ToolbridgeError):
    """The service behind a tool failed."""

    code = "upstream_error"
    status = 502
    title = "upstream error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
    title = "deadline exceeded"


class UpstreamUnavailable(UpstreamError):
    """The request failed in transport. ``sent`` is False only when no byte can have reached the upstream."""

    code = "upstream_unavailable"
    status = 503
    title = "upstream unavailable"

    def __init__(self, message: str, *, sent: bool, hint: str | None = None, tool: str | None = None) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.sent = sent


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; ``body`` holds an excerpt of its error body.

    Its HTTP status (:func:`http_status`) is the upstream's own for answers that tell the caller what to
    change — 400, 404, 409, 410, 412, 422, 429 — and 502 (a broken upstream) for the rest.
    """

    code = "upstream_status"
    status = 502
    title = "upstream returned an error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        retry_after: float | None = None,
        body: str | None = None,
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.body = body

    def extra(self) -> dict[str, object]:
        doc: dict[str, object] = {"upstream_status": self.upstream_status}
        if self.retry_after is not None:
            doc["retry_after"] = self.retry_after
        if self.body:
            doc["upstream_body"] = self.body
        return doc


class UpstreamRpcError(UpstreamStatusError):
    """An upstream MCP server answered a request with a JSON-RPC error. ``answer`` is that error object as
    it came (``code``, ``message``, ``data``): MCP surfaces relay it unchanged, others show the message."""

    def __init__(
        self,
        message: str,
        *,
        answer: Mapping[str, Any],
        upstream_status: int,
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, upstream_status=upstream_status, hint=hint, tool=tool)
        self.answer = dict(answer)

    def extra(self) -> dict[str, object]:
        return {**super().extra(), "jsonrpc_error": self.answer}


class InputRequired(UpstreamError):
    """The upstream asks the caller for input (an MCP ``input_required`` result: elicitation, sampling,
    roots) that this caller cannot give: not an MCP client of the 2026-07-28 era, or one without the
    capability."""

    code = "input_required"
    status = 422
    title = "the upstream needs input from the caller"


class OutcomeUnknown(UpstreamError):
    code = "outcome_unknown"
    status = 504
    title = "outcome unknown"


class CircuitOpen(UpstreamError):
    code = "circuit_open"
    status = 503
    title = "circuit open"

    def __init__(
        self, message: str, *, retry_after: float, hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.retry_after = retry_after

    def extra(self) -> dict[str, object]:
        return {"retry_after": round(self.retry_after, 3)}


class UpstreamBusy(UpstreamError):
    code = "upstream_busy"
    status = 503
    title = "connector busy"


class NoProviderAvailable(UpstreamError):
    """No provider of a capability could serve the call: each was skipped (its breaker open, its connection
    in need of re-authorization, or a transient failure after its own retries). ``skipped`` names each
    provider tool with the code of the error that skipped it."""

    code = "no_provider"
    status = 503
    title = "no provider available"

    def __init__(
        self,
        message: str,
        *,
        skipped: Sequence[Mapping[str, str]] = (),
        retry_after: float | None = None,
        hint: str | None = None,
        tool: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.skipped = [dict(s) for s in skipped]
        self.retry_after = retry_after

    def extra(self) -> dict[str, object]:
        doc: dict[str, object] = {"skipped": self.skipped}
        if self.retry_after is not None:
            doc["retry_after"] = round(self.retry_after, 3)
        return doc


class TokenRefreshFailed(UpstreamError):
    """The token endpoint failed in a way that may pass (5xx, network); the connection is not marked dead.
    ``retry_after``: seconds before a refresh is tried again (the endpoint's Retry-After, or the manager's
    pause after a failure), when known."""

    code = "token_refresh_failed"
    status = 503
    title = "token refresh failed"
    retry_after: float | None = None

    def extra(self) -> dict[str, object]:
        return {} if self.retry_after is None else {"retry_after": round(self.retry_after, 3)}


class ToolExecutionError(UpstreamError):
    """An in-process tool raised. The message names the exception type and its text."""

    code = "tool_failed"
    status = 502
    title = "tool failed"


class UpstreamToolError(ToolExecutionError):
    """An upstream MCP tool answered with ``isError``. ``answer`` is its whole ``CallToolResult`` (text,
    images, ``structuredContent``, ``_meta``): MCP surfaces relay it, others show its text."""

    def __init__(
        self, message: str, *, answer: Mapping[str, Any], hint: str | None = None, tool: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, tool=tool)
        self.answer = dict(answer)


class StorageError(ToolbridgeError):
    code = "storage_error"
    status = 503
    title = "storage unavailable"

    @property
    def refused_statement(self) -> bool:
        """The database (or the driver, before sending) refused a statement — its data, a constraint, a
        lock — so another statement may well pass. False when the database could not be reached or the
        connection dropped: a batch of writes retried one by one would fail each the same way."""
        cause = self.__cause__
        if getattr(cause, "orig", None) is None or getattr(cause, "statement", None) is None:
            return False  # not the driver's error, or raised while connecting (refused, no such database)
        return not getattr(cause, "connection_invalidated", False)


PASSED_THROUGH_STATUSES = frozenset({400, 404, 409, 410, 412, 422, 429})
"""Upstream statuses a surface answers with as they are: the caller can act on them."""


def http_status(exc: ToolbridgeError) -> int:
    """The HTTP status a surface answers ``exc`` with."""
    if isinstance(exc, UpstreamStatusError) and exc.upstream_status in PASSED_THROUGH_STATUSES:
        return exc.upstream_status
    return exc.status


def problem(exc: ToolbridgeError, *, instance: str | None = None) -> dict[str, object]:
    """The RFC 9457 problem document for an error."""
    doc: dict[str, object] = {
        "type": PROBLEM_BASE + exc.code,
        "title": exc.title,
        "status": http_status(exc),
        "detail": exc.message,
        "code": exc.code,
    }
    if exc.hint:
        doc["hint"] = exc.hint
    if exc.tool:
        doc["tool"] = exc.tool
    if instance:
        doc["instance"] = instance
    if exc.replayed:
        doc["replayed"] = True
    doc.update(exc.extra())
    return doc


def from_problem(doc: Mapping[str, object], *, status: int | None = None) -> ToolbridgeError:
    """Rebuild the error a problem document describes (the inverse of :func:`problem`)."""
    from toolbridge._problems import rebuild  # it imports this module's classes

    return rebuild(doc, status=status)
