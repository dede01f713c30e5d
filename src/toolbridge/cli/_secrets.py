"""``toolbridge secrets``: named secrets in the vault, for ``vault:NAME`` references in toolbridge.yaml
(a webhook source's ``secret:``, a connection's ``--secret vault:NAME``).

A value never comes from the command line (shell history, ``ps``): it is read from standard input (a
prompt that does not echo on a terminal) or from an environment variable named with ``--from-env``.
Setting and deleting leave an audit row naming the secret's digest, never its value.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from toolbridge.cli._app import _fail, _run, _settings
from toolbridge.cli._credentials import ConfigOption, DatabaseOption, master_keys
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from toolbridge.credentials import Secret, Vault
    from toolbridge.settings import Settings

__all__ = ["secrets_app"]

Record = Callable[[str, str], Awaitable[None]]

secrets_app = typer.Typer(
    help="Named secrets in the vault, for 'vault:NAME' references (webhook secrets, connections).",
    no_args_is_help=True,
)
out = console()

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
"""A name of the operator's: no ``:`` (the vault's own entries, ``connection:…``, have one)."""


def _check(name: str) -> str:
    if not _NAME.fullmatch(name):
        _fail(
            BadRequest(
                f"{name!r} is not a secret name",
                hint="use letters, digits, '_', '.' and '-' (at most 128, no ':'), e.g. billing-hook",
            )
        )
    return name


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="The name a 'vault:NAME' reference gives")],
    from_env: Annotated[
        str | None, typer.Option("--from-env", help="Read the value from this environment variable")
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Store (or replace) a named secret; the value comes from stdin or --from-env, never the command line."""
    _check(name)
    if from_env is not None:
        value = os.environ.get(from_env, "")
        where = f"the environment variable {from_env}"
    elif sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not shown): ")
        where = "the prompt"
    else:
        value = sys.stdin.read().removesuffix("\n")
        where = "standard input"
    if not value:
        _fail(
            BadRequest(f"no value for {name!r} came from {where}", hint="pipe it in, or use --from-env VAR")
        )
    settings = _settings(config, database)

    async def main() -> None:
        async with _vault_of(settings) as (vault, record):
            await vault.put(name, _secret(value))
            await record("(credentials.secret_set)", name)

    _run(main)
    out.print(f"stored {name}: reference it as 'vault:{name}'", highlight=False)


@secrets_app.command("list")
def secrets_list(
    config: ConfigOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """The names of the stored secrets (never their values)."""
    from toolbridge.cli._startup import require_database

    settings = _settings(config, database)

    async def main() -> list[str]:
        require_database(settings.server.database)
        async with _vault_of(settings) as (vault, _):
            return [n for n in await vault.names() if _NAME.fullmatch(n)]

    names = _run(main)
    show(
        out,
        [{"name": n, "reference": f"vault:{n}"} for n in names],
        {"name": "name", "reference": "reference"},
        as_json=as_json,
    )


@secrets_app.command("delete")
def secrets_delete(name: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Delete a named secret (references to it then fail, saying so)."""
    _check(name)
    settings = _settings(config, database)

    async def main() -> None:
        async with _vault_of(settings) as (vault, record):
            if not await vault.delete(name):
                raise NotFound(
                    f"the vault has no secret named {name!r}", hint="'toolbridge secrets list' names them"
                )
            await record("(credentials.secret_delete)", name)

    _run(main)
    out.print(f"deleted {name}", highlight=False)


def _secret(value: str) -> Secret:
    from toolbridge.credentials import Secret

    return Secret(value)


@asynccontextmanager
async def _vault_of(settings: Settings) -> AsyncIterator[tuple[Vault, Record]]:
    """The vault of ``settings``'s database and master key, and a function that audits an action on a
    name (by the name's digest, as connections are audited)."""
    from toolbridge.assembly._credentials import default_keys
    from toolbridge.audit import AuditLog, args_digest, audit_entry
    from toolbridge.credentials import Vault
    from toolbridge.storage import Database

    database = Database(settings.server.database, pool_size=settings.server.database_pool)
    async with database, AuditLog(database) as audit:

        async def record(action: str, name: str) -> None:
            digest = args_digest({"secret": name})
            await audit.record(audit_entry(secrets.token_hex(8), "local:local", action, digest, outcome="ok"))

        yield Vault(database, master_keys() or default_keys(settings)), record
