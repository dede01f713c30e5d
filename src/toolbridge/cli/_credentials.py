"""``toolbridge keys …``, ``toolbridge connections …`` and ``toolbridge connect``.

Registered by :mod:`toolbridge.cli`; kept apart so the CLI module stays small. The master key comes from
``TOOLBRIDGE_MASTER_KEY`` (base64; ``TOOLBRIDGE_MASTER_KEY_PREVIOUS`` during a rotation) or the key file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer
from rich.markup import escape

from toolbridge._suggest import close_matches
from toolbridge.cli._app import _settings
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.credentials import (
    Authorization,
    ConnectFlow,
    CredentialManager,
    Keyring,
    KeySource,
    MasterKey,
    Material,
    SecretRef,
    StaticKeys,
    resolve_reference,
    rotate_master_key,
)
from toolbridge.credentials._ownership import check_owner
from toolbridge.errors import BadRequest, ConfigurationError, ToolbridgeError, did_you_mean
from toolbridge.hub import Hub

__all__ = ["connect", "connections_app", "keys_app", "master_keys"]

T = TypeVar("T")
keys_app = typer.Typer(help="Create and rotate the vault's master key.", no_args_is_help=True)
connections_app = typer.Typer(
    help="List, add, test and remove connections (credentials).", no_args_is_help=True
)
out = console()
err = console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to use")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", envvar="TOOLBRIDGE_DATABASE", help="Database URL, overriding the config file's"
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="Master key file [default: credentials.key_file of the config]"),
]


def master_keys() -> KeySource | None:
    """The keyring from TOOLBRIDGE_MASTER_KEY (and …_PREVIOUS, comma-separated), or None: use the key file."""
    value = os.environ.get("TOOLBRIDGE_MASTER_KEY")
    if not value:
        return None
    previous = [v for v in os.environ.get("TOOLBRIDGE_MASTER_KEY_PREVIOUS", "").split(",") if v.strip()]
    return StaticKeys(
        Keyring(MasterKey.from_base64(value), tuple(MasterKey.from_base64(v) for v in previous))
    )


def _fail(exc: ToolbridgeError) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False)
    raise typer.Exit(1)


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return anyio.run(fn)
    except ToolbridgeError as exc:
        _fail(exc)


def _hub(config: Path | None, database: str | None = None, *, recorded: bool = False) -> Hub:
    """The hub, with connections; ``recorded``: the command only reads them (a SQLite database that is
    not there is an error, after the configuration's own, not an empty database created)."""
    from toolbridge.cli._startup import no_new_database, require_database

    settings = _settings(config, database)
    try:
        hub = Hub.from_settings(no_new_database(settings) if recorded else settings, keys=master_keys())
        if hub.credentials is None:
            raise ConfigurationError("no connector declares 'connections:'", hint="see docs/credentials.md")
        if recorded:
            require_database(settings.server.database)
    except ToolbridgeError as exc:
        _fail(exc)
    return hub


def _manager(hub: Hub) -> CredentialManager:
    assert hub.credentials is not None
    return hub.credentials


def _key_file(config: Path | None, key_file: Path | None) -> Any:
    from toolbridge.assembly._credentials import default_keys
    from toolbridge.credentials import KeyFile

    return KeyFile(key_file) if key_file else default_keys(_settings(config))


# -- keys -----------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init(config: ConfigOption = None, key_file: KeyFileOption = None) -> None:
    """Write a new master key file (mode 0600). Back it up: without it the vault cannot be read."""
    target = _key_file(config, key_file)
    try:
        ring = target.create()
    except ToolbridgeError as exc:
        _fail(exc)
    out.print(f"wrote master key {ring.current.id} to {target.path} (mode 0600); back it up somewhere safe")


@keys_app.command("rotate")
def keys_rotate(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    key_file: KeyFileOption = None,
    settle: Annotated[
        float, typer.Option(help="Seconds before the final re-wrap pass (a margin: writes are fenced)")
    ] = 0.0,
) -> None:
    """Re-wrap every data key with a new master key, while servers keep serving."""
    settings = _settings(config, database)
    target = _key_file(config, key_file)
    from toolbridge.audit import AuditLog
    from toolbridge.storage import Database

    async def main() -> Any:
        async with Database(settings.server.database) as db, AuditLog(db) as audit:
            return await rotate_master_key(db, target, settle=settle, audit=audit)

    rotation = _run(main)
    out.print(
        f"rotated to master key {rotation.new_key_id}: {rotation.rewrapped} data keys re-wrapped; "
        f"old key(s) {', '.join(rotation.old_key_ids)} removed from {target.path}"
    )


@keys_app.command("rewrap")
def keys_rewrap(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Re-wrap every data key with TOOLBRIDGE_MASTER_KEY (after moving the old one to …_PREVIOUS)."""
    from toolbridge.credentials._vault import rewrap_all
    from toolbridge.storage import Database

    keys = master_keys()
    if keys is None:
        _fail(ConfigurationError("TOOLBRIDGE_MASTER_KEY is not set", hint="for key files use 'keys rotate'"))
    settings = _settings(config, database)

    async def main() -> int:
        from toolbridge.audit import AuditLog, args_digest, audit_entry

        ring = keys.keyring()
        async with Database(settings.server.database) as db, AuditLog(db) as audit:
            count = await rewrap_all(db, ring)
            digest = args_digest(
                {"from": [k.id for k in ring.previous], "to": ring.current.id, "rewrapped": count}
            )
            await audit.record(audit_entry(secrets.token_hex(8), "operator", "(credentials.rewrap)", digest))
            return count

    out.print(f"{_run(main)} data keys re-wrapped; TOOLBRIDGE_MASTER_KEY_PREVIOUS can now be dropped")


# -- connections ----------------------------------------------------------------------------------


@connections_app.command("list")
def connections_list(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List connections with their state (never their secrets)."""
    hub = _hub(config, database, recorded=True)

    async def main() -> list[dict[str, Any]]:
        async with hub:
            manager = _manager(hub)
            now = manager.clock()
            return [
                c.document(
                    now, manager.bindings[c.connector].refresh_skew if c.connector in manager.bindings else 0
                )
                for c in await manager.store.list()
            ]

    docs = _run(main)
    rows = [
        {**d, "owner": d["owner"] or "(shared)", "last_error": d["last_error"] or ""} if not as_json else d
        for d in docs
    ]
    columns = {
        "id": "id",
        "connector": "connector",
        "account": "account",
        "owner": "owner",
        "scheme": "scheme",
        "state": "state",
        "version": "token_version",
        "last error": "last_error",
    }
    show(out, rows, columns, as_json=as_json)  # one JSON object per line, as every listing; text escaped


def _owner(text: str) -> str:
    """``--for``: a principal id (``agent:NAME``) or a bare agent name; empty for a shared connection."""
    if not text:
        return ""
    return text if ":" in text else f"agent:{text}"


async def _known_owner(hub: Hub, text: str) -> str:
    """``--for``, checked: an agent must exist (declared in toolbridge.yaml or made by ``agents create``). A
    connection for a misspelt or unknown agent was stored and never used (found by an outside probe)."""
    owner = _owner(text)
    kind, _, name = owner.partition(":")
    if not owner or kind == "local":
        return owner
    if kind != "agent":
        raise BadRequest(
            f"--for {text!r} names no principal",
            hint="give an agent's name: --for alice-bot (or agent:alice-bot)",
        )
    names = sorted(a.name for a in await hub.agents.list())
    if name not in names:
        close = did_you_mean(close_matches(name, names))
        raise BadRequest(
            f"--for {text!r}: there is no agent {name!r} (agents: {', '.join(names) or 'none yet'})",
            hint=(f"{close} " if close else "")
            + f"declare it under 'agents:' in toolbridge.yaml, or create it: toolbridge agents create {name}",
        )
    return owner


@connections_app.command("add")
def connections_add(
    connector: str,
    account: Annotated[str, typer.Option("--account", "-a", help="Account name, e.g. alice")] = "default",
    secret: Annotated[
        str | None, typer.Option("--secret", help="env:NAME, file:PATH or vault:NAME [default: prompt]")
    ] = None,
    owner: Annotated[
        str, typer.Option("--for", help="The principal it belongs to, e.g. agent:alice [default: shared]")
    ] = "",
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Add (or replace) a connection whose credential is a static secret: API key, token, password, …"""
    hub = _hub(config, database)

    async def main() -> Any:
        async with hub:
            manager = _manager(hub)
            binding = manager.binding(connector)
            check_owner(binding, connector, _owner(owner))
            await _known_owner(hub, owner)
            if binding.configured and not _owner(owner):  # the configured secret is the one served
                raise ConfigurationError(
                    f"connector {connector!r}'s shared connection is configured in toolbridge.yaml "
                    f"(secret: {binding.secret_source}): a connection added here would never be used",
                    hint=f"change {binding.secret_source} and restart toolbridge, or drop 'secret' from "
                    f"connectors.{connector}.connections to keep the secret in the vault instead",
                )
            if binding.scheme == "oauth2":
                raise ConfigurationError(
                    f"connector {connector!r} uses OAuth 2",
                    hint=f"connect it with: toolbridge connect {connector}",
                )
            value = None
            if secret is not None:
                value = await resolve_reference(SecretRef.parse(secret), vault=manager.vault.get)
            elif binding.scheme not in ("client_credentials", "jwt_bearer"):
                from toolbridge.credentials import Secret

                value = Secret(typer.prompt(f"secret for {connector} as {account}", hide_input=True))
            return await manager.add(connector, account, Material(secret=value), owner=_owner(owner))

    conn = _run(main)
    whose = f" for {conn.owner}" if conn.owner else " (shared)"
    out.print(
        f"connection {conn.id}: {conn.connector} as {conn.account}{whose} ({conn.scheme}), {conn.state}"
    )
    out.print(f"check it with: toolbridge connections test {conn.id}")


@connections_app.command("test")
def connections_test(ident: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Make one read-only probe call with the connection; exit 1 if it fails."""
    from toolbridge.credentials._probe import probe

    hub = _hub(config, database)

    async def main() -> Any:
        async with hub:
            return await probe(_manager(hub), ident)

    result = _run(main)
    if result.ok:
        out.print(f"[green]ok[/]: {escape(result.detail)}", highlight=False)
        return
    err.print(f"[bold red]failed[/]: {escape(result.detail)}", highlight=False)
    raise typer.Exit(1)


@connections_app.command("remove")
def connections_remove(ident: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Remove a connection and its secrets from the vault."""
    hub = _hub(config, database)

    async def main() -> bool:
        async with hub:
            return await _manager(hub).remove(ident)

    _run(main)
    out.print(f"removed connection {ident}")


def connect(
    connector: str,
    account: Annotated[str, typer.Option("--account", "-a", help="Account name, e.g. alice")] = "default",
    owner: Annotated[
        str, typer.Option("--for", help="The principal it belongs to, e.g. agent:alice [default: shared]")
    ] = "",
    redirect_uri: Annotated[
        str | None,
        typer.Option(
            "--redirect-uri",
            help="Loopback URL to complete on, registered with the provider "
            "[default: connections.redirect_uri of the connector]",
        ),
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the URL in a browser")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the callback")] = 600.0,
) -> None:
    """Connect an OAuth account: open the printed URL, sign in; completes on a 127.0.0.1 callback."""
    from toolbridge.credentials._loopback import connect_on_loopback

    hub = _hub(config, database)

    def show(authorization: Authorization) -> None:
        out.print("open this URL in a browser and sign in:", highlight=False)
        print(authorization.url, flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(authorization.url)

    async def main() -> Any:
        async with hub:
            flow = ConnectFlow(_manager(hub))
            check_owner(flow.manager.binding(connector), connector, _owner(owner))
            whose = await _known_owner(hub, owner)
            return await connect_on_loopback(
                flow, connector, account, show=show, wait=wait, owner=whose, redirect_uri=redirect_uri
            )

    conn = _run(main)
    out.print(f"connected {conn.connector} as {conn.account} (connection {conn.id})")
