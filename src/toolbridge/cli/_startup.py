"""What ``serve`` and ``mcp`` check before they print anything: a config to serve, a port to listen on.

Each problem is a :class:`ConfigurationError` (one ``error:`` line and a ``hint:``, exit code 1), raised
before a banner or an API key is printed.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from toolbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from toolbridge.hub import Hub
    from toolbridge.settings import Settings

__all__ = ["listen_socket", "no_new_database", "require_config", "require_database", "state_note"]


def require_config(config: Path | None) -> None:
    """A server needs a configuration: without one it would serve no tools at all."""
    if config is not None or Path("toolbridge.yaml").exists():
        return
    raise ConfigurationError(
        f"no configuration: there is no toolbridge.yaml in {os.getcwd()} and no --config was given",
        hint="write one with 'toolbridge init', or pass one: --config examples/quickstart.yaml "
        "(or set TOOLBRIDGE_CONFIG)",
    )


def require_database(url: str) -> None:
    """A command that reads recorded state needs the database to be there: opening a SQLite file that is
    not there creates an empty one, and the command then read nothing from it ("0 rows verified")."""
    path = _sqlite_file(url)
    if path is None or path.exists():
        return
    raise ConfigurationError(
        f"no database at {path.absolute()}: nothing has been recorded there "
        "('toolbridge serve' creates it on its first start)",
        hint="run this in the folder 'toolbridge serve' runs in (the database path is relative to it), or "
        "point at its database: --database sqlite+aiosqlite:////abs/path/toolbridge.db (or "
        "TOOLBRIDGE_DATABASE), or --config with a toolbridge.yaml whose server.database names it",
    )


def no_new_database(settings: Settings) -> Settings:
    """``settings`` for a command that shows the configuration and reads state only where there is some:
    a SQLite file that is not there is replaced by a database in memory, not created."""
    path = _sqlite_file(settings.server.database)
    if path is None or path.exists():
        return settings
    server = settings.server.model_copy(update={"database": "sqlite+aiosqlite://"})
    return settings.model_copy(update={"server": server})


def _sqlite_file(url: str) -> Path | None:
    """The SQLite file of ``url``; None for another database, or a URL that is no URL (opening the
    database says what is wrong with it)."""
    import sqlalchemy

    from toolbridge.storage import sqlite_file

    try:
        return sqlite_file(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (handed to the web server), or why it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {host!r} is not a known host or address ({exc.strerror})",
            hint="pass an address such as 127.0.0.1 or 0.0.0.0 with --host (or TOOLBRIDGE_HOST)",
        ) from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from exc
    # Not inheritable (Python's default, which uvicorn's own binding turns off for its worker processes):
    # one process serves it, and under uvloop an inheritable socket went to every stdio MCP server
    # started, which then held the port after toolbridge was killed.
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> ConfigurationError:
    if exc.errno == errno.EADDRINUSE:
        return ConfigurationError(
            f"port {port} on {host} is already in use (another toolbridge, or another server)",
            hint=f"stop the other server, or pick another port: --port {port + 1} (or TOOLBRIDGE_PORT)",
        )
    if exc.errno == errno.EACCES:
        return ConfigurationError(
            f"not allowed to listen on port {port} of {host}",
            hint="ports below 1024 need privileges: pick a higher one with --port (or TOOLBRIDGE_PORT)",
        )
    return ConfigurationError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}",
        hint="check --host (an address of this machine) and --port",
    )


def state_note(settings: Settings, hub: Hub) -> str:
    """Where a stdio server keeps its state (a desktop client starts it in a folder of its choosing)."""
    from toolbridge.assembly._workspace import blob_folder
    from toolbridge.settings import WorkspaceConnectorSettings
    from toolbridge.storage import sqlite_file

    database = sqlite_file(settings.server.database)
    where = [f"database {database.absolute() if database else hub.database.redacted_url}"]
    for name, connector in settings.connectors.items():
        if isinstance(connector, WorkspaceConnectorSettings) and connector.s3 is None:
            folder = blob_folder(connector.blob_path, settings).absolute()
            where.append(f"workspace {name!r} files in {folder}")
    return f"toolbridge mcp: {len(hub.catalog)} tools over stdio; state: {'; '.join(where)}"
