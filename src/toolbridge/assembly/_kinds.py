"""The registry of connector kinds: ``kind:`` in the config file → the function that builds that connector.

A builder takes the connector's name, its settings block and :class:`Parts` — the few things connectors
share, handed over explicitly (the database, the credentials, the event log, the callbacks a connector
reports through) — never the whole hub. Each builder's module is imported when a connector of that kind
is built, so a configuration without MCP upstreams does not import the MCP SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolbridge.connectors import Connector
    from toolbridge.connectors._events import HubEvent
    from toolbridge.credentials import CredentialManager
    from toolbridge.events import EventLog
    from toolbridge.settings import (
        McpConnectorSettings,
        OpenAPIConnectorSettings,
        PythonConnectorSettings,
        Settings,
        WorkspaceConnectorSettings,
    )
    from toolbridge.storage import Database

__all__ = ["KINDS", "Builder", "Parts"]


def _ignore_event(event: HubEvent) -> None:
    return None


def _ignore_change(connector: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Parts:
    """What a connector builder may use besides its own settings block."""

    settings: Settings
    database: Database
    credentials: CredentialManager | None = None
    events: EventLog | None = None
    """The event log, when events are configured (workspace changes are recorded there)."""
    on_event: Callable[[HubEvent], None] = _ignore_event
    """Upstream events (list changes, log messages, resource updates) for the surfaces to forward."""
    on_tools_changed: Callable[[str], None] = _ignore_change
    """Called with the connector's name when its tools changed while running."""


Builder = Callable[[str, Any, Parts], "Connector"]


def _python(name: str, config: PythonConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._python import python_connector

    return python_connector(name, config, parts.settings)


def _openapi(name: str, config: OpenAPIConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._openapi import openapi_connector

    return openapi_connector(name, config, parts.settings, credentials=parts.credentials)


def _mcp(name: str, config: McpConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._mcp import mcp_connector

    return mcp_connector(name, config, parts)


def _workspace(name: str, config: WorkspaceConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._workspace import workspace_connector

    return workspace_connector(name, config, parts)


KINDS: Mapping[str, Builder] = {
    "mcp": _mcp,
    "openapi": _openapi,
    "python": _python,
    "workspace": _workspace,
}
"""Every ``kind:`` a connector may have; a test checks it matches the settings' union of kinds."""
