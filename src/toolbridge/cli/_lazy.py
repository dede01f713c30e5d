"""Sub-commands of ``toolbridge`` whose modules are imported only when that command runs.

The credentials, workspace and MCP commands import SQLAlchemy, cryptography or the MCP SDK; loading them
for every command made ``toolbridge tools list`` for one OpenAPI document cost ~4 s and ~100 MiB. Each
entry of :data:`LAZY` names the module and attribute of a ``typer.Typer`` (a group) or a function (one
command); ``toolbridge --help`` still lists them all (it imports them to read their help).
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer._click.core import Command, Context  # typer 0.29 runs on its own copy of click
from typer.core import TyperGroup

__all__ = ["LAZY", "LazyGroup"]

LAZY: dict[str, tuple[str, str]] = {
    "workspace": ("toolbridge.cli._workspace", "workspace_app"),
    "keys": ("toolbridge.cli._credentials", "keys_app"),
    "connections": ("toolbridge.cli._credentials", "connections_app"),
    "connect": ("toolbridge.cli._credentials", "connect"),
    "events": ("toolbridge.cli._events", "events_app"),
    "hooks": ("toolbridge.cli._events", "hooks_app"),
    "subscriptions": ("toolbridge.cli._events", "subscriptions_app"),
    "capabilities": ("toolbridge.cli._capabilities", "capabilities_app"),
    "pipelines": ("toolbridge.cli._pipelines", "pipelines_app"),
}


class LazyGroup(TyperGroup):
    """A Typer group that imports the commands of :data:`LAZY` on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in LAZY if name not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY and cmd_name not in self.commands:
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


def _load(name: str) -> Command:
    """The command as ``app.add_typer`` / ``app.command`` would have made it (no completion options)."""
    module, attribute = LAZY[name]
    target: Any = getattr(importlib.import_module(module), attribute)
    outer = typer.Typer(add_completion=False)
    if isinstance(target, typer.Typer):
        outer.add_typer(target, name=name)
        group = typer.main.get_command(outer)
        assert isinstance(group, TyperGroup)
        return group.commands[name]
    outer.command(name)(target)
    return typer.main.get_command(outer)
