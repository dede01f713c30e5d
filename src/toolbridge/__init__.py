"""toolbridge: one catalog of tools for AI agents, behind one call path.

Importing the package does nothing but define names: no settings are read, no logging is configured, and
no module is imported before its name is used (``toolbridge.Hub`` imports the hub on first access), so a
command that only reads an OpenAPI document does not pay for the hub, the MCP SDK or SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolbridge._lazy import lazy_exports

if TYPE_CHECKING:
    from toolbridge._shape import CallResult
    from toolbridge.catalog import Tool, ToolAnnotations
    from toolbridge.client import Client
    from toolbridge.errors import (
        AuthenticationError,
        BadRequest,
        CallerError,
        CircuitOpen,
        ConfigFileError,
        ConfigurationError,
        Conflict,
        CredentialsError,
        IdempotencyKeyReused,
        InvalidArguments,
        OutcomeUnknown,
        PayloadTooLarge,
        PermissionDenied,
        RateLimited,
        StorageError,
        ToolbridgeError,
        ToolExecutionError,
        ToolNotFound,
        UpstreamBusy,
        UpstreamError,
        UpstreamStatusError,
        UpstreamTimeout,
        UpstreamUnavailable,
    )
    from toolbridge.hub import Hub, Limits
    from toolbridge.policy import Principal, Scope

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CallResult",
    "CallerError",
    "CircuitOpen",
    "Client",
    "ConfigFileError",
    "ConfigurationError",
    "Conflict",
    "CredentialsError",
    "Hub",
    "IdempotencyKeyReused",
    "InvalidArguments",
    "Limits",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "PermissionDenied",
    "Principal",
    "RateLimited",
    "Scope",
    "StorageError",
    "Tool",
    "ToolAnnotations",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolbridgeError",
    "UpstreamBusy",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    [  # light modules first: a name is taken from the first module that defines it
        "toolbridge.errors",
        "toolbridge._shape",
        "toolbridge.catalog",
        "toolbridge.policy",
        "toolbridge.client",
        "toolbridge.hub",
    ],
    __all__,
    globals(),
)
