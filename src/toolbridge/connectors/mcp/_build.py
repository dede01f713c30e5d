"""``kind: mcp`` settings → an :class:`McpConnector` (the edge where secret references are resolved)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolbridge.connectors.mcp._config import HttpServer, StdioServer, ToolRules
from toolbridge.connectors.mcp._connector import McpConnector
from toolbridge.connectors.mcp._pins import PinStore
from toolbridge.errors import ConfigurationError
from toolbridge.settings import McpConnectorSettings, Settings

if TYPE_CHECKING:
    from toolbridge.hub import Hub

__all__ = ["mcp_connector"]

_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")


def mcp_connector(
    name: str,
    config: McpConnectorSettings,
    settings: Settings,
    hub: Hub,
    *,
    environ: Mapping[str, str] | None = None,
) -> McpConnector:
    env = os.environ if environ is None else environ
    server: StdioServer | HttpServer
    if config.command is not None:
        cwd = str((settings.base_dir / config.cwd).resolve()) if config.cwd else None
        server = StdioServer(
            command=config.command,
            args=tuple(config.args),
            env=_resolve(f"connectors.{name}.env", config.env, env),
            cwd=cwd,
            protocol=config.protocol,
        )
    else:
        assert config.url is not None
        server = HttpServer(
            url=config.url,
            headers=_resolve(f"connectors.{name}.headers", config.headers, env),
            protocol=config.protocol,
        )
    rules = ToolRules(
        read_only=tuple(config.read_only),
        destructive=tuple(config.destructive),
        idempotent=tuple(config.idempotent),
        hide=tuple(config.hide),
    )
    return McpConnector(
        name,
        server,
        rules=rules,
        pins=PinStore(hub.database),
        approval=config.approve,
        on_tools_changed=lambda: hub.refresh_tools(name) if hub.running else None,
    )


def _resolve(where: str, values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Values as written, except ``env:NAME`` references, which become the variable's value."""
    resolved: dict[str, str] = {}
    for key, value in values.items():
        match = _ENV_REF.match(value)
        if match is None:
            if value.startswith("env:"):
                raise ConfigurationError(
                    f"{where}.{key}: {value!r} is not a valid env: reference",
                    hint="write 'env:VARIABLE_NAME'",
                )
            resolved[key] = value
            continue
        secret = environ.get(match.group(1))
        if secret is None:
            raise ConfigurationError(
                f"{where}.{key} refers to the environment variable {match.group(1)}, which is not set",
                hint=f"export {match.group(1)}=... before starting toolbridge",
            )
        resolved[key] = secret
    return resolved
