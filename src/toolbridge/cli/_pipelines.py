"""``toolbridge pipelines list | run | status | cancel | resume`` — in-process against the configured hub, as
the local operator (like ``toolbridge call``). ``run`` executes the run here and waits for it (``--no-wait``
leaves it to ``toolbridge worker``); ``resume`` continues a run that nobody holds, here and now."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from toolbridge.audit import canonical_json
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.errors import ConfigurationError

__all__ = ["pipelines_app"]

T = TypeVar("T")

pipelines_app = typer.Typer(
    help="Durable pipelines: list, run, and follow or steer their runs.", no_args_is_help=True
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
RunId = Annotated[str, typer.Argument(help="The run's id (from 'pipelines run' or the pipeline tool)")]
_RUNS = {  # header -> field, as show() takes them (the other way round left run, created, updated blank)
    "run": "run_id",
    "pipeline": "pipeline",
    "state": "state",
    "created": "created_at",
    "updated": "updated_at",
}


def _with_service(
    config: Path | None,
    database: str | None,
    work: Callable[[Any, Any], Awaitable[T]],
    redis: str | None = None,
    *,
    recorded: bool = False,
    peek: bool = False,
) -> T:
    """``work`` on the hub and its pipeline service; ``recorded``: it reads recorded runs (the database
    must be there), ``peek``: it shows the configuration (a database that is not there is not created)."""
    from toolbridge.cli import _app as cli
    from toolbridge.cli._startup import require_database
    from toolbridge.pipelines import pipeline_service

    settings = cli._settings(config, database, redis)
    hub = cli._hub(config, database, settings, peek=peek or recorded)  # a missing one is told of below

    async def main() -> T:
        service = pipeline_service(hub)
        if service is None:
            raise ConfigurationError(
                "no pipelines are configured", hint="add 'pipelines:' to toolbridge.yaml (docs/patterns.md)"
            )
        if recorded:
            require_database(settings.server.database)
        async with hub:
            return await work(hub, service)

    return cli._run(main)


def _operator() -> Any:
    from toolbridge.policy import Principal

    return Principal.local("cli")


@pipelines_app.command("list")
def list_pipelines(
    runs: Annotated[bool, typer.Option("--runs", help="List recent runs instead of the pipelines")] = False,
    state: Annotated[str | None, typer.Option(help="With --runs: only runs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The configured pipelines and their steps (``--runs``: recent runs, newest first)."""

    async def work(_hub: Any, service: Any) -> None:
        if runs:
            found = await service.store.runs(state=state, limit=limit)
            show(out, [r.as_dict() for r in found], _RUNS, as_json=as_json)
            return
        rows = [
            {"name": p.name, "steps": " → ".join(s.name for s in p.steps), "description": p.description}
            for p in service.pipelines.values()
        ]
        show(out, rows, {"pipeline": "name", "steps": "steps", "description": "description"}, as_json=as_json)

    _with_service(config, database, work, recorded=runs, peek=not runs)


@pipelines_app.command("run")
def run_pipeline(
    name: Annotated[str, typer.Argument(help="The pipeline")],
    arguments: Annotated[str, typer.Argument(help="The run's input as a JSON object")] = "{}",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Run it here and wait for its end")] = True,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
) -> None:
    """Start a run (its input validated like any tool call) and print its state."""
    try:
        given = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"not JSON: {exc.msg} at position {exc.pos}", param_hint="ARGUMENTS"
        ) from None

    async def work(hub: Any, service: Any) -> None:
        if wait:
            result = await hub.call(_operator(), f"pipelines.{name}", given)
            _print(result.value)
            return
        service.inline = False
        async with hub.perform(_operator(), f"pipelines.{name}", given, scope=f"pipelines.{name}") as tool:
            assert tool is not None
            hub.catalog.validate(
                tool, given, size=len(canonical_json(given)), max_bytes=hub.limits.max_argument_bytes
            )
            run = await service.start(name, _operator(), given, request_id=f"cli-{name}")
        _print({**run.as_dict(), "hint": "a 'toolbridge worker' runs it"})

    _with_service(config, database, work, redis)


@pipelines_app.command("status")
def status(run_id: RunId, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """A run with each step's state, output or error."""

    async def work(_hub: Any, service: Any) -> None:
        _print(await service.status(run_id))

    _with_service(config, database, work, recorded=True)


@pipelines_app.command("cancel")
def cancel(run_id: RunId, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Ask a run to stop: the worker holding it undoes its completed steps (state ``cancelled``)."""

    async def work(_hub: Any, service: Any) -> None:
        run = await service.cancel(run_id)
        _print({**run.as_dict(), "hint": "its worker undoes the completed steps at the next step"})

    _with_service(config, database, work)


@pipelines_app.command("resume")
def resume(run_id: RunId, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Continue a run now: one that ended ``needs_attention`` compensates again; an active run that no
    worker holds is executed here."""

    async def work(_hub: Any, service: Any) -> None:
        _print((await service.resume(run_id)).as_dict())

    _with_service(config, database, work)


def _print(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
