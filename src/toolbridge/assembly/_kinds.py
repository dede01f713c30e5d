"""The registry of connector kinds: ``kind:`` in the config file → the function that builds that connector.

A builder takes the connector's name, its settings block and :class:`Parts` — the few things connectors
share, handed over explicitly (the database, the credentials, the event log) — never the whole hub; a
connector that reports between calls is attached to its hub by ``Hub.add_connector``. Each builder's
module is imported when a connector of that kind is built, so a configuration without MCP upstreams does
not import the MCP SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolbridge.connectors import Connector
    from toolbridge.credentials import CredentialManager
    from toolbridge.events import EventLog
    from toolbridge.settings import (
        GraphQLConnectorSettings,
        McpConnectorSettings,
        OpenAPIConnectorSettings,
        PythonConnectorSettings,
        Settings,
        WorkspaceConnectorSettings,
    )
    from toolbridge.storage import Database

__all__ = ["KINDS", "Builder", "Parts"]


@dataclass(frozen=True, slots=True)
class Parts:
    """What a connector builder may use besides its own settings block."""

    settings: Settings
    database: Database
    credentials: CredentialManager | None = None
    events: EventLog | None = None
    """The event log, when events are configured (workspace changes are recorded there)."""


Builder = Callable[[str, Any, Parts], "Connector"]


def _python(name: str, config: PythonConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._python import python_connector

    return python_connector(name, config, parts.settings)


def _openapi(name: str, config: OpenAPIConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._openapi import openapi_connector

    return openapi_connector(name, config, parts.settings, credentials=parts.credentials)


def _graphql(name: str, config: GraphQLConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._graphql import graphql_connector

    return graphql_connector(name, config, parts.settings)


def _mcp(name: str, config: McpConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._mcp import mcp_connector

    return mcp_connector(name, config, parts)


def _workspace(name: str, config: WorkspaceConnectorSettings, parts: Parts) -> Connector:
    from toolbridge.assembly._workspace import workspace_connector

    return workspace_connector(name, config, parts)


KINDS: Mapping[str, Builder] = {
    "graphql": _graphql,
    "mcp": _mcp,
    "openapi": _openapi,
    "python": _python,
    "workspace": _workspace,
}
"""Every ``kind:`` a connector may have; a test checks it matches the settings' union of kinds."""
