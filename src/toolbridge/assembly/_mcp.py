"""``kind: mcp`` settings → an :class:`McpConnector` (the edge where secret references are resolved).

Secrets come from the credentials layer when the connector declares ``connections:``: HTTP upstreams get
the connection's auth on every request; a stdio server's ``env`` values written ``connection:NAME`` are
read from the connector's default connection each time the process starts (``NAME`` is ``secret``,
``access_token`` or a field of a JSON secret). ``env:NAME`` references still read toolbridge's own
environment once, at build time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from toolbridge.connectors._base import Credentials
from toolbridge.connectors.mcp._config import HttpServer, StdioServer, ToolRules
from toolbridge.connectors.mcp._connector import McpConnector
from toolbridge.connectors.mcp._pins import PinStore
from toolbridge.errors import ConfigurationError
from toolbridge.policy import Principal
from toolbridge.settings import McpConnectorSettings

if TYPE_CHECKING:
    from toolbridge.assembly._kinds import Parts
    from toolbridge.credentials import CredentialManager

__all__ = ["mcp_connector"]

_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
_CONNECTION_REF = re.compile(r"^connection:([A-Za-z_][A-Za-z0-9_]*)$")


def mcp_connector(
    name: str,
    config: McpConnectorSettings,
    parts: Parts,
    *,
    environ: Mapping[str, str] | None = None,
) -> McpConnector:
    env = os.environ if environ is None else environ
    settings, manager = parts.settings, parts.credentials
    server: StdioServer | HttpServer
    if config.command is not None:
        cwd = str((settings.base_dir / config.cwd).resolve()) if config.cwd else None
        static = {k: v for k, v in config.env.items() if not v.startswith("connection:")}
        server = StdioServer(
            command=config.command,
            args=tuple(config.args),
            env=_resolve(f"connectors.{name}.env", static, env),
            cwd=cwd,
            protocol=config.protocol,
            start_timeout=config.start_timeout,
        )
    else:
        assert config.url is not None
        server = HttpServer(
            url=config.url,
            headers=_resolve(f"connectors.{name}.headers", config.headers, env),
            protocol=config.protocol,
            transport=config.transport,
            proxy=config.proxy,
            ca_file=_path(settings.base_dir, config.ca_file),
            client_cert=_path(settings.base_dir, config.client_cert),
            client_key=_path(settings.base_dir, config.client_key),
            fast_path=config.fast_path,
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
        pins=PinStore(parts.database),
        approval=config.approve,
        default_credentials=_default_credentials(name, manager),
        connection_env=_connection_env(name, config.env, manager),
        prefixed=config.prefix,
        secrets=_referenced(config.env if config.command is not None else config.headers, env),
    )


def _default_credentials(
    name: str, manager: CredentialManager | None
) -> Callable[[], Awaitable[Credentials | None]] | None:
    """The connector's default connection (for the session and tool listing), when it has ``connections:``.

    Resolved as toolbridge itself (``local:toolbridge``), never as an agent: no agent token goes upstream.
    """
    if manager is None or name not in manager.bindings:
        return None
    principal = Principal.local("toolbridge")

    async def resolve() -> Credentials | None:
        return await manager.resolve(name, principal, None, tool=f"{name}.(session)")

    return resolve


def _connection_env(
    name: str, env: Mapping[str, str], manager: CredentialManager | None
) -> Callable[[], Awaitable[Mapping[str, str]]] | None:
    """The stdio ``env`` values that name a connection's secrets, read at each process start."""
    refs = {k: v for k, v in env.items() if v.startswith("connection:")}
    if not refs:
        return None
    where = f"connectors.{name}.env"
    fields: dict[str, str] = {}
    for key, value in refs.items():
        match = _CONNECTION_REF.match(value)
        if match is None:
            raise ConfigurationError(
                f"{where}.{key}: {value!r} is not a valid connection: reference",
                hint="write 'connection:secret', 'connection:access_token' or 'connection:FIELD'",
            )
        fields[key] = match.group(1)
    if manager is None or name not in manager.bindings:
        raise ConfigurationError(
            f"{where} reads a connection, but connector {name!r} declares no connections",
            hint="add 'connections: {scheme: bearer}' (or another scheme) to the connector",
        )
    principal = Principal.local("toolbridge")

    async def values() -> Mapping[str, str]:
        secrets = await manager.secret_values(name, principal, tool=f"{name}.(start)")
        missing = sorted({f for f in fields.values() if f not in secrets})
        if missing:
            raise ConfigurationError(
                f"{where}: the connection of {name!r} has no {', '.join(missing)}",
                hint="store a JSON secret with those fields, or use connection:secret",
            )
        return {key: secrets[field].reveal() for key, field in fields.items()}

    return values


def _referenced(values: Mapping[str, str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """The values that ``env:NAME`` references stand for (secrets, unlike values written out)."""
    return tuple(environ[m.group(1)] for v in values.values() if (m := _ENV_REF.match(v)) is not None)


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


def _path(base_dir: Path, path: str | None) -> str | None:
    """A file named in the settings, relative to the settings file's folder."""
    return None if path is None else str((base_dir / path).resolve())
