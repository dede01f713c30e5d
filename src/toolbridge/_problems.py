"""Problem documents back into errors: what :func:`toolbridge.errors.from_problem` does (the remote
client's side of RFC 9457), kept apart from the tree itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from toolbridge.errors import (
    AuthenticationError,
    AuthorizationRejected,
    BadRequest,
    ChecksumMismatch,
    CircuitOpen,
    ConfigurationError,
    Conflict,
    ConnectRequired,
    CredentialsError,
    IdempotencyKeyReused,
    InputRequired,
    InvalidArguments,
    KeyInFlight,
    LeaseLost,
    Locked,
    NoProviderAvailable,
    NotConnected,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PermissionDenied,
    PreconditionFailed,
    QuotaExceeded,
    RateLimited,
    StorageError,
    StorageQuotaExceeded,
    TokenRefreshFailed,
    ToolbridgeError,
    ToolExecutionError,
    ToolNotFound,
    ToolQuarantined,
    UpstreamBusy,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["rebuild"]


def rebuild(doc: Mapping[str, object], *, status: int | None = None) -> ToolbridgeError:
    """Rebuild the error a problem document describes (the inverse of :func:`toolbridge.errors.problem`)."""
    message = str(doc.get("detail") or doc.get("title") or f"HTTP {status or doc.get('status')}")
    hint = doc.get("hint")
    hint_text = str(hint) if hint is not None else None
    tool = str(doc["tool"]) if doc.get("tool") is not None else None
    code = str(doc.get("code", ""))
    special = _SPECIAL.get(code)
    if special is not None:
        return special(doc, message, hint_text, tool)
    cls = _BY_CODE.get(code) or _by_status(int(status or doc.get("status") or 500))  # type: ignore[call-overload]
    return cls(message, hint=hint_text, tool=tool)


def _num(doc: Mapping[str, object], key: str) -> float:
    value = doc.get(key, 0)
    return float(value) if isinstance(value, int | float | str) else 0.0


def _dict(doc: Mapping[str, object], key: str) -> dict[str, object]:
    value = doc.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _waiting(exc: TokenRefreshFailed, doc: Mapping[str, object]) -> TokenRefreshFailed:
    exc.retry_after = _num(doc, "retry_after") if "retry_after" in doc else None
    return exc


def _list(doc: Mapping[str, object], key: str) -> list[Any]:
    value = doc.get(key)
    return list(value) if isinstance(value, list) else []


_Factory = Callable[[Mapping[str, object], str, str | None, str | None], ToolbridgeError]
_SPECIAL: dict[str, _Factory] = {
    "tool_not_found": lambda d, m, h, t: ToolNotFound(t or "", suggestions=_list(d, "suggestions")),
    "connect_required": lambda d, m, h, t: ConnectRequired(m, connect=_dict(d, "connect"), hint=h, tool=t),
    "invalid_arguments": lambda d, m, h, t: InvalidArguments(m, errors=_list(d, "errors"), hint=h, tool=t),
    "permission_denied": lambda d, m, h, t: PermissionDenied(
        m, missing_scope=str(d.get("missing_scope", "")), hint=h, tool=t
    ),
    "payload_too_large": lambda d, m, h, t: PayloadTooLarge(
        "the request", size=int(_num(d, "size")), limit=int(_num(d, "limit"))
    ),
    "rate_limited": lambda d, m, h, t: RateLimited(m, retry_after=_num(d, "retry_after"), hint=h, tool=t),
    "circuit_open": lambda d, m, h, t: CircuitOpen(m, retry_after=_num(d, "retry_after"), hint=h, tool=t),
    "no_provider": lambda d, m, h, t: NoProviderAvailable(
        m,
        skipped=_list(d, "skipped"),
        retry_after=_num(d, "retry_after") if "retry_after" in d else None,
        hint=h,
        tool=t,
    ),
    "upstream_status": lambda d, m, h, t: UpstreamStatusError(
        m,
        upstream_status=int(_num(d, "upstream_status")),
        retry_after=_num(d, "retry_after") if "retry_after" in d else None,
        body=str(d["upstream_body"]) if d.get("upstream_body") else None,
        hint=h,
        tool=t,
    ),
    "upstream_unavailable": lambda d, m, h, t: UpstreamUnavailable(m, sent=True, hint=h, tool=t),
    "locked": lambda d, m, h, t: Locked(
        m, holder=str(d.get("holder", "")), expires_in=_num(d, "expires_in"), hint=h, tool=t
    ),
    "precondition_failed": lambda d, m, h, t: PreconditionFailed(
        m, current=_dict(d, "current"), hint=h, tool=t
    ),
    "checksum_mismatch": lambda d, m, h, t: ChecksumMismatch(m, current=_dict(d, "current"), hint=h, tool=t),
    "token_refresh_failed": lambda d, m, h, t: _waiting(TokenRefreshFailed(m, hint=h, tool=t), d),
    "conflict": lambda d, m, h, t: (  # a key in flight is a conflict that says when to ask again
        KeyInFlight(m, retry_after=_num(d, "retry_after"), hint=h, tool=t)
        if "retry_after" in d
        else Conflict(m, hint=h, tool=t)
    ),
    "quota_exceeded": lambda d, m, h, t: (StorageQuotaExceeded if d.get("status") == 507 else QuotaExceeded)(
        m,
        limit_name=str(d.get("limit_name", "")),
        limit=int(_num(d, "limit")),
        used=int(_num(d, "used")),
        hint=h or "",
        tool=t,
    ),
}
_SIMPLE: tuple[type[ToolbridgeError], ...] = (
    AuthenticationError,
    AuthorizationRejected,
    BadRequest,
    ConfigurationError,
    Conflict,
    CredentialsError,
    NotConnected,
    NotFound,
    IdempotencyKeyReused,
    InputRequired,
    LeaseLost,
    OutcomeUnknown,
    StorageError,
    TokenRefreshFailed,
    ToolExecutionError,
    ToolQuarantined,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
)
_BY_CODE: dict[str, type[ToolbridgeError]] = {cls.code: cls for cls in _SIMPLE}


def _by_status(status: int) -> type[ToolbridgeError]:
    if status == 401:
        return AuthenticationError
    if status == 409:
        return Conflict
    if 400 <= status < 500:
        return BadRequest
    return UpstreamError
