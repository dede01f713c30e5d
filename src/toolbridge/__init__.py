"""toolbridge: one catalog of tools for AI agents, behind one call path.

Importing the package does nothing but define names: no settings are read, no logging is configured.
"""

from toolbridge._shape import CallResult
from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.client import Client
from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    CallerError,
    ConfigFileError,
    ConfigurationError,
    CredentialsError,
    InvalidArguments,
    PayloadTooLarge,
    PermissionDenied,
    StorageError,
    ToolbridgeError,
    ToolExecutionError,
    ToolNotFound,
    UpstreamError,
    UpstreamTimeout,
)
from toolbridge.hub import Hub, Limits
from toolbridge.policy import Principal, Scope

__all__ = [
    "AuthenticationError",
    "BadRequest",
    "CallResult",
    "CallerError",
    "Client",
    "ConfigFileError",
    "ConfigurationError",
    "CredentialsError",
    "Hub",
    "InvalidArguments",
    "Limits",
    "PayloadTooLarge",
    "PermissionDenied",
    "Principal",
    "Scope",
    "StorageError",
    "Tool",
    "ToolAnnotations",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolbridgeError",
    "UpstreamError",
    "UpstreamTimeout",
]
