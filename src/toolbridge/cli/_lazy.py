"""Sub-commands of ``toolbridge`` whose modules are imported only when that command runs.

The credentials, workspace and MCP commands import SQLAlchemy, cryptography or the MCP SDK; loading them
for every command made ``toolbridge tools list`` for one OpenAPI document cost ~4 s and ~100 MiB. Each
entry of :data:`LAZY` names the module and attribute of a ``typer.Typer`` (a group) or a function (one
command), and its help line: ``toolbridge --help`` lists them all from those lines without importing them
(tests/test_import_cost.py checks that the lines match the commands' own help).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer._click.core import Command, Context  # typer 0.29 runs on its own copy of click
from typer._click.exceptions import ClickException
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import Abort

__all__ = ["LAZY", "LazyGroup"]

LAZY: dict[str, tuple[str, str, str]] = {
    "workspace": (
        "toolbridge.cli._workspace",
        "workspace_app",
        "List, upload, download and delete workspace files.",
    ),
    "keys": ("toolbridge.cli._credentials", "keys_app", "Create and rotate the vault's master key."),
    "connections": (
        "toolbridge.cli._credentials",
        "connections_app",
        "List, add, test and remove connections (credentials).",
    ),
    "secrets": (
        "toolbridge.cli._secrets",
        "secrets_app",
        "Named secrets in the vault, for 'vault:NAME' references (webhook secrets, connections).",
    ),
    "connect": (
        "toolbridge.cli._credentials",
        "connect",
        "Connect an OAuth account: open the printed URL, sign in; completes on a 127.0.0.1 callback.",
    ),
    "events": ("toolbridge.cli._events", "events_app", "Read the event log and deliver events again."),
    "hooks": (
        "toolbridge.cli._events",
        "hooks_app",
        "Inbound webhook sources: list them, send a signed test delivery.",
    ),
    "subscriptions": (
        "toolbridge.cli._events",
        "subscriptions_app",
        "Event subscriptions: what they match, their targets, re-enable a disabled endpoint.",
    ),
    "capabilities": (
        "toolbridge.cli._capabilities",
        "capabilities_app",
        "Router capabilities: list them with their providers, try one.",
    ),
    "pipelines": (
        "toolbridge.cli._pipelines",
        "pipelines_app",
        "Durable pipelines: list, run, and follow or steer their runs.",
    ),
}


class LazyGroup(TyperGroup):
    """A Typer group that imports the commands of :data:`LAZY` on first use (not to list them in help)."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY if name not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY and cmd_name not in self.commands:
            if self._listing:
                return TyperCommand(cmd_name, help=LAZY[cmd_name][2])
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """As Typer's, but a usage error read by a program (stderr no terminal, ``NO_COLOR``,
        ``TERM=dumb``) is Click's plain lines (``Error: No such option: --fromat``), not a box drawn with
        Unicode lines around it."""
        if not standalone_mode or not plain_errors():
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def format_help(self, ctx: Context, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def plain_errors() -> bool:
    """Whether usage errors are printed plain: stderr is no terminal (piped, or read by an agent), or the
    environment asks for no colours (``NO_COLOR``) or has a dumb terminal (``TERM=dumb``)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return True
    return not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def _load(name: str) -> Command:
    """The command as ``app.add_typer`` / ``app.command`` would have made it (no completion options)."""
    module, attribute, _ = LAZY[name]
    target: Any = getattr(importlib.import_module(module), attribute)
    outer = typer.Typer(add_completion=False)
    if isinstance(target, typer.Typer):
        outer.add_typer(target, name=name)
        group = typer.main.get_command(outer)
        assert isinstance(group, TyperGroup)
        return group.commands[name]
    outer.command(name)(target)
    return typer.main.get_command(outer)
