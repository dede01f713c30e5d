"""The one exception tree of toolbridge.

Branches are named after who must act to fix the problem::

    ToolbridgeError
    ├── ConfigurationError ........ the operator: a bad toolbridge.yaml, setting or registration
    │   └── ConfigFileError ....... with the file, line, key, choices and "did you mean"
    ├── CallerError ............... the caller (agent or program) must change its call
    │   ├── AuthenticationError ... no key, an unknown key or a revoked key (HTTP 401)
    │   ├── PermissionDenied ...... the principal lacks the scope for this tool (HTTP 403)
    │   ├── ToolNotFound .......... no such tool, or not visible to this principal (HTTP 404)
    │   ├── InvalidArguments ...... arguments do not match the tool's input schema (HTTP 422)
    │   ├── PayloadTooLarge ....... request body or arguments over the limit (HTTP 413)
    │   └── BadRequest ............ malformed request at a surface (HTTP 400)
    ├── CredentialsError .......... a person must reconnect the account (HTTP 401 upstream-side)
    ├── UpstreamError ............. the service behind the tool failed
    │   ├── UpstreamTimeout ....... the call's deadline passed before the tool answered (HTTP 504)
    │   └── ToolExecutionError .... an in-process (Python) tool raised
    └── StorageError .............. the database could not be used

Every error carries a stable machine ``code``, an HTTP ``status``, a human ``message`` saying what was
wrong and where, and a ``hint`` saying what to do. :func:`toolbridge.errors.problem` turns any of them
into an RFC 9457 problem document; surfaces map to JSON-RPC from the same fields. Messages never carry
secret values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CallerError",
    "ConfigFileError",
    "ConfigurationError",
    "CredentialsError",
    "InvalidArguments",
    "PayloadTooLarge",
    "PermissionDenied",
    "StorageError",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolbridgeError",
    "UpstreamError",
    "UpstreamTimeout",
    "did_you_mean",
    "problem",
]

PROBLEM_BASE = "https://toolbridge.dev/problems/"


class ToolbridgeError(Exception):
    """Root of every error toolbridge raises on purpose."""

    code: ClassVar[str] = "toolbridge_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "toolbridge error"

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


class CredentialsError(ToolbridgeError):
    """The stored credentials no longer work: a person must reconnect the account."""

    code = "reconnect_required"
    status = 401
    title = "reconnect required"


class UpstreamError(ToolbridgeError):
    """The service behind a tool failed."""

    code = "upstream_error"
    status = 502
    title = "upstream error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    status = 504
    title = "deadline exceeded"


class ToolExecutionError(UpstreamError):
    """An in-process tool raised. The message names the exception type and its text."""

    code = "tool_failed"
    status = 502
    title = "tool failed"


class StorageError(ToolbridgeError):
    code = "storage_error"
    status = 503
    title = "storage unavailable"


def did_you_mean(candidates: Iterable[str]) -> str | None:
    """Render suggestions as Click does: ``did you mean 'a' or 'b'?``."""
    names = [f"{c!r}" for c in candidates]
    if not names:
        return None
    return (
        "did you mean " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]) + "?"
    )


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def problem(exc: ToolbridgeError, *, instance: str | None = None) -> dict[str, object]:
    """The RFC 9457 problem document for an error."""
    doc: dict[str, object] = {
        "type": PROBLEM_BASE + exc.code,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.message,
        "code": exc.code,
    }
    if exc.hint:
        doc["hint"] = exc.hint
    if exc.tool:
        doc["tool"] = exc.tool
    if instance:
        doc["instance"] = instance
    doc.update(exc.extra())
    return doc
