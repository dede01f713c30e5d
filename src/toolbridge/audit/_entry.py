"""The one place audit entries are made: what an action's outcome was, from the error it ended with."""

from __future__ import annotations

import datetime as dt

from toolbridge.audit._chain import AuditEntry
from toolbridge.errors import AuthenticationError, PermissionDenied, RateLimited, ToolbridgeError

__all__ = ["audit_entry"]

_DENIED = (AuthenticationError, PermissionDenied, RateLimited)


def audit_entry(
    request_id: str,
    principal: str,
    action: str,
    digest: str,
    *,
    duration_ms: float = 0.0,
    error: BaseException | None = None,
    outcome: str | None = None,
    error_code: str | None = None,
) -> AuditEntry:
    """The entry for one action by ``principal``: ``ok`` without ``error``, ``denied`` for an
    authentication, permission or rate refusal, ``error`` otherwise (``outcome`` overrides, as
    ``queued`` or ``replayed``). ``error_code`` is the error's code (``internal`` for an unexpected one),
    unless given."""
    if outcome is None:
        outcome = "ok" if error is None else "denied" if isinstance(error, _DENIED) else "error"
    code = error_code
    if code is None and error is not None:
        code = error.code if isinstance(error, ToolbridgeError) else "internal"
    return AuditEntry(
        ts=dt.datetime.now(dt.UTC),
        request_id=request_id,
        principal=principal[:80],
        tool=action[:128],
        args_digest=digest,
        outcome=outcome,
        error_code=code,
        duration_ms=duration_ms,
    )
