"""``toolbridge capabilities list | test``: the router's capabilities, and one call of one (or a dry run).

Commands run in-process against the configured hub as the local operator, like ``toolbridge call``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from toolbridge._suggest import close_matches
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.errors import ConfigurationError, ToolbridgeError, ToolNotFound

if TYPE_CHECKING:
    from toolbridge.hub import Hub
    from toolbridge.router import Router

__all__ = ["capabilities_app"]

capabilities_app = typer.Typer(
    help="Router capabilities: list them with their providers, try one.", no_args_is_help=True
)
out = console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to use")
]
DatabaseOption = Annotated[
    str | None, typer.Option("--database", envvar="TOOLBRIDGE_DATABASE", help="Database URL override")
]
RedisOption = Annotated[
    str | None, typer.Option("--redis", envvar="TOOLBRIDGE_REDIS", help="Redis URL override (shared limits)")
]
_COLUMNS = {"capability": "tool", "choice": "choice", "providers": "providers", "description": "description"}


def _router(hub: Hub) -> Router:
    from toolbridge.router import find_router

    router = find_router(hub)
    if router is None:
        raise ConfigurationError(
            "no capabilities are configured", hint="add 'capabilities:' to toolbridge.yaml (docs/patterns.md)"
        )
    return router


def _tool(router: Router, name: str) -> str:
    tool = name if name.startswith(router.name + ".") else f"{router.name}.{name}"
    try:
        router.capability(tool)
    except KeyError:
        known = [c.name for c in router.capabilities]
        raise ToolNotFound(
            tool, suggestions=[f"{router.name}.{m}" for m in close_matches(name, known)]
        ) from None
    return tool


@capabilities_app.command("list")
def capabilities_list(
    config: ConfigOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Each capability: its tool, how the first provider is chosen, its providers in order."""
    from toolbridge.cli import _app as cli
    from toolbridge.router import capability_documents

    hub = cli._hub(config, database)
    try:
        router = _router(hub)
    except ConfigurationError as exc:
        cli._fail(exc)
    docs = capability_documents(hub, router, [t.name for t in router.tools()], detail=True)
    if not as_json:
        for doc in docs:
            doc["providers"] = [f"{p['tool']} ({p['breaker']})" for p in doc["providers"]]
    show(out, docs, _COLUMNS, as_json=as_json)


@capabilities_app.command("test")
def capabilities_test(
    name: Annotated[str, typer.Argument(help="The capability (store_file or capability.store_file)")],
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="key=value (value parsed as JSON if it can be)")
    ] = None,
    json_args: Annotated[
        str | None, typer.Option("--json", help="The whole input as one JSON object")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show each provider's arguments and check them; call nothing")
    ] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
) -> None:
    """Call a capability (audited like any call) and show which provider served it and which were skipped."""
    from toolbridge.cli import _app as cli

    arguments = cli._parse_args(arg or [], json_args)
    hub = cli._hub(config, database, redis=redis)

    async def main() -> None:
        async with hub:
            router = _router(hub)
            tool = _tool(router, name)
            if dry_run:
                _print_plan(hub, router, tool, arguments)
            else:
                await _call(hub, tool, arguments)

    cli._run(main)


def _print_plan(hub: Hub, router: Router, tool: str, arguments: dict[str, Any]) -> None:
    from toolbridge.router import plan

    for n, planned in enumerate(plan(hub, router, tool, arguments), 1):
        verdict = "[green]ok[/]" if planned.problem is None else f"[red]{escape(planned.problem)}[/]"
        sent = escape(json.dumps(dict(planned.arguments), ensure_ascii=False))
        out.print(f"{n}. {escape(planned.tool)} {sent} {verdict}", highlight=False)


async def _call(hub: Hub, tool: str, arguments: dict[str, Any]) -> None:
    from toolbridge.policy import Principal

    request_id = "cli-" + secrets.token_hex(6)
    failure: ToolbridgeError | None = None
    try:
        result = await hub.call(Principal.local(), tool, arguments, request_id=request_id)
    except ToolbridgeError as exc:
        failure = exc
    for record in await hub.audit.tail(50, request_id=request_id):
        e = record.entry
        if e.tool != tool:
            verdict = "served" if e.outcome == "ok" else f"not served ({e.error_code})"
            out.print(f"{escape(e.tool)}: {verdict}", highlight=False)
    if failure is not None:
        raise failure
    out.print(result.text, highlight=False, markup=False, soft_wrap=True)
