"""The ``toolbridge`` command. The only module that reads the environment (``TOOLBRIDGE_*``)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import anyio
import anyio.abc
import typer
from rich.markup import escape
from rich.table import Table

from toolbridge._starter import STARTER_CONFIG
from toolbridge._suggest import close_matches
from toolbridge.cli._graphql import add_graphql  # noqa: F401 - registers 'toolbridge add graphql'
from toolbridge.cli._lazy import LazyGroup
from toolbridge.cli._logging import LOG_LEVELS, configure_logging
from toolbridge.cli._mcp import has_mcp, tool_list, tool_rows
from toolbridge.cli._openapi import add_app, document_connectors, print_failed, print_report
from toolbridge.cli._output import JsonOption, console, show
from toolbridge.errors import ToolbridgeError, ToolNotFound, did_you_mean

if TYPE_CHECKING:  # imported where used: a command that only reads a document stays light (cli/_lazy.py)
    from toolbridge.hub import Hub
    from toolbridge.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="toolbridge: one catalog of tools for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=LazyGroup,
)
tools_app = typer.Typer(help="Inspect the tool catalog.", no_args_is_help=True)
agents_app = typer.Typer(help="Create, list and revoke agents and their API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Read and verify the hash-chained audit log.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(agents_app, name="agents")
app.add_typer(audit_app, name="audit")
app.add_typer(add_app, name="add")

out = console()
err = console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"toolbridge {version('toolbridge')}")
        raise typer.Exit()


def _log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
    return value.lower()


@app.callback()
def _main(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="TOOLBRIDGE_LOG_LEVEL",
            callback=_log_level,
            help=f"One of {', '.join(LOG_LEVELS)}: debug and info add timed log lines, error drops warnings",
        ),
    ] = "warning",
) -> None:
    """toolbridge: one catalog of tools for AI agents."""
    configure_logging(log_level)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="TOOLBRIDGE_CONFIG",
        help="toolbridge.yaml to use [default: ./toolbridge.yaml if present]",
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", envvar="TOOLBRIDGE_DATABASE", help="Database URL, overriding the config file's"
    ),
]

RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="TOOLBRIDGE_REDIS",
        help="Redis URL (redis://host:6379/0) through which replicas share rate limits, overriding the "
        "config file's",
    ),
]


def _settings(config: Path | None, database: str | None = None, redis: str | None = None) -> Settings:
    from toolbridge.settings import Settings, load_settings  # pydantic: not for --help

    if config is None and Path("toolbridge.yaml").exists():
        config = Path("toolbridge.yaml")
    try:
        settings = load_settings(config) if config else Settings()
    except ToolbridgeError as exc:
        _fail(exc)
    if database:
        settings = settings.model_copy(
            update={"server": settings.server.model_copy(update={"database": database})}
        )
    if redis:
        settings = _with_redis(settings, redis)
    return settings


def _with_redis(settings: Settings, redis: str) -> Settings:
    """``settings`` with the server's Redis URL from ``--redis`` (checked as the file's would be)."""
    import pydantic

    from toolbridge.errors import ConfigurationError
    from toolbridge.settings import ServerSettings

    try:
        server = ServerSettings.model_validate({**settings.server.model_dump(), "redis": redis})
    except pydantic.ValidationError as exc:  # our validator's message (the password masked), not the input
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        _fail(ConfigurationError(f"--redis: {message}", hint="or set server.redis in the config file"))
    return settings.model_copy(update={"server": server})


def _hub(
    config: Path | None,
    database: str | None,
    settings: Settings | None = None,
    redis: str | None = None,
    *,
    peek: bool = False,
    recorded: bool = False,
) -> Hub:
    """The hub of the command. ``peek``: it only shows what is configured (and state where there is some),
    so a SQLite database that is not there is not created (one in memory stands in). ``recorded``: it
    reads recorded state, so a SQLite database that is not there is an error (opening it would create an
    empty one, and the command would show nothing, as if nothing had happened)."""
    from toolbridge.cli._credentials import master_keys
    from toolbridge.cli._startup import no_new_database, require_database
    from toolbridge.hub import Hub

    settings = settings or _settings(config, database, redis)
    try:
        if recorded:
            require_database(settings.server.database)
    except ToolbridgeError as exc:
        _fail(exc)
    if peek:
        settings = no_new_database(settings)
    try:
        return Hub.from_settings(settings, keys=master_keys())
    except ToolbridgeError as exc:
        _fail(exc)


def _configured(config: Path | None) -> None:
    """A command about the tools needs a configuration: without one the catalog is empty, and an empty
    table or "no tool named …" did not say that the file was not found."""
    from toolbridge.cli._startup import require_config

    try:
        require_config(config)
    except ToolbridgeError as exc:
        _fail(exc)


def _fail(exc: ToolbridgeError) -> NoReturn:
    """Print our error as one line plus its hint, and exit 1 (no traceback for expected problems)."""
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False)
    raise typer.Exit(1)


async def _stop_on_sigterm(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Cancel ``scope`` on SIGTERM (systemd, docker and Kubernetes stop with it), so the hub then closes as
    on Ctrl-C: queued audit rows written, connections closed, SQLite's WAL checkpointed. It ended the
    process at once, with the last commits only in the -wal file. A second SIGTERM ends it at once."""
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


def _run(fn: Callable[[], Awaitable[T]], *, server: bool = False, traced: Settings | None = None) -> T:
    """Run a coroutine; turn our errors into a one-line message and exit code 1.

    ``server``: a long-running server, on uvloop where it is installed (a dependency on Linux and
    macOS; uvicorn then also picks httptools): the same code, less CPU per request. ``traced``: the
    settings of a command that serves (serve, worker, mcp): its trace spans are exported as they (or the
    ``OTEL_*`` variables) say, the last ones when it ends.
    """
    options = {"use_uvloop": True} if server and importlib.util.find_spec("uvloop") is not None else {}
    try:
        with _traces(traced):
            return anyio.run(fn, backend_options=options)
    except ToolbridgeError as exc:
        _fail(exc)


def _traces(settings: Settings | None) -> AbstractContextManager[object]:
    if settings is None:
        return nullcontext()
    from toolbridge.cli._telemetry import exported_traces  # the SDK: only for commands that serve

    return exported_traces(settings.telemetry, os.environ)


# -- init / serve / mcp ---------------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file")] = Path("toolbridge.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented starter toolbridge.yaml."""
    if path.exists() and not force:
        err.print(f"[bold red]error:[/] {path} already exists (use --force to overwrite it)")
        raise typer.Exit(1)
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    out.print(f"wrote {path}; start the server with: toolbridge serve -c {path}")


@app.command()
def serve(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    host: Annotated[str | None, typer.Option(envvar="TOOLBRIDGE_HOST", help="Interface to bind")] = None,
    port: Annotated[
        int | None, typer.Option(envvar="TOOLBRIDGE_PORT", min=0, max=65535, help="Port to bind")
    ] = None,
    create_agent: Annotated[
        str | None,
        typer.Option(
            "--create-agent", help="Issue a fresh API key for this (configured) agent at start and print it"
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option("--worker/--no-worker", help="Also retry queued writes (the outbox) in this process"),
    ] = True,
) -> None:
    """Serve MCP at /mcp and REST at /v1 (one process, embedded storage by default). Trace spans are
    exported over OTLP/HTTP when the config's telemetry.traces or the OTEL_* variables ask (serve, worker
    and mcp alike; needs the 'otel' extra)."""
    from functools import partial

    from toolbridge.cli._credentials import master_keys
    from toolbridge.cli._serve import Serving, serve_forever
    from toolbridge.cli._startup import listen_socket, require_config

    settings = _settings(config, database, redis)
    bind_host = host or settings.server.host
    bind_port = port if port is not None else settings.server.port
    try:  # before anything is printed: no banner, no key for a server that cannot start
        require_config(config)
        keys = master_keys()
        sock = listen_socket(bind_host, bind_port)
    except ToolbridgeError as exc:
        _fail(exc)
    serving = Serving(bind_host, bind_port, sock, create_agent, worker)
    _run(partial(serve_forever, settings, keys, serving), server=True, traced=settings)


@app.command("worker")
def worker_command(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    once: Annotated[bool, typer.Option("--once", help="Process what is due now, then exit")] = False,
) -> None:
    """Retry queued writes (the outbox), deliver events and run pipelines until stopped; run beside
    `serve --no-worker`."""
    from toolbridge.cli._startup import require_config
    from toolbridge.events._worker import delivery_worker
    from toolbridge.pipelines._worker import pipeline_worker
    from toolbridge.worker import OutboxWorker

    try:  # without one it worked on an empty database of its own, silently (its servers' is elsewhere)
        require_config(config)
    except ToolbridgeError as exc:
        _fail(exc)
    settings = _settings(config, database, redis)
    hub = _hub(config, database, settings)

    async def main() -> int:
        async with hub:
            runner = pipeline_worker(hub)
            if once:
                deliverer = delivery_worker(hub)
                events = await deliverer.tick() if deliverer is not None else 0
                runs = await runner.run_once() if runner is not None else 0
                return events + runs + await OutboxWorker(hub).run_once()
            async with anyio.create_task_group() as tg:
                await tg.start(_stop_on_sigterm, tg.cancel_scope)
                logging.getLogger("toolbridge.worker").info("worker running; stop it with Ctrl-C or SIGTERM")
                if (deliverer := delivery_worker(hub)) is not None:
                    tg.start_soon(deliverer.run)
                if runner is not None:
                    tg.start_soon(runner.run)
                await OutboxWorker(hub).run()
        return 0

    count = _run(main, server=not once, traced=settings)
    if once:
        out.print(f"processed {count} queued write(s), event deliveries and pipeline runs")


@app.command("outbox")
def outbox_command(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    state: Annotated[str | None, typer.Option(help="queued, running, parked, done or failed")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List writes queued for a later retry, newest first."""
    hub = _hub(config, database, recorded=True)

    async def main() -> Any:
        async with hub:
            return await hub.outbox.items(state=state, limit=limit)

    rows = [
        {
            "id": item.id,
            "tool": item.tool,
            "state": item.state,
            "attempts": item.attempts,
            "next_attempt_at": item.next_attempt_at.isoformat(timespec="seconds"),
            "last_error": (item.last_error or {}).get("detail", ""),
        }
        for item in _run(main)
    ]
    columns = {"id": "id", "tool": "tool", "state": "state", "attempts": "attempts"}
    show(
        out, rows, {**columns, "next attempt": "next_attempt_at", "last error": "last_error"}, as_json=as_json
    )


@app.command()
def mcp(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
    key: Annotated[
        str | None,
        typer.Option(
            envvar="TOOLBRIDGE_API_KEY", help="Act as the agent holding this key (default: local, all tools)"
        ),
    ] = None,
) -> None:
    """Serve MCP over stdio (for desktop clients such as Claude Desktop). Stops when stdin closes, or on
    SIGTERM (after closing the hub: queued audit rows written)."""
    from toolbridge.cli._credentials import master_keys
    from toolbridge.cli._startup import require_config, state_note
    from toolbridge.hub import Hub
    from toolbridge.policy import Principal
    from toolbridge.surfaces.mcp import serve_stdio

    try:
        require_config(config)
    except ToolbridgeError as exc:
        _fail(exc)
    settings = _settings(config, database, redis)

    async def main() -> None:
        async with Hub.from_settings(settings, keys=master_keys()) as hub:
            principal = await hub.authenticate(key) if key else Principal.local()
            err.print(state_note(settings, hub), highlight=False)  # stderr: stdout is the protocol's
            async with anyio.create_task_group() as tg:  # until stdin closes, or SIGTERM
                await tg.start(_stop_on_sigterm, tg.cancel_scope)
                await serve_stdio(hub, principal)
                tg.cancel_scope.cancel()

    _run(main, traced=settings)


# -- tools / call ---------------------------------------------------------------------------------


@tools_app.command("list")
def tools_list(
    connector: Annotated[
        str | None, typer.Argument(help="Only this connector's tools, with its report")
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every tool in the catalog (or one connector's, with what it skipped)."""
    _configured(config)
    hub, connectors = _listed(config, database)
    if connector is not None and connector not in connectors:
        _fail(ToolbridgeError(f"no connector named {connector!r}", hint=_known(connector, list(connectors))))
    mcp = hub is not None and has_mcp(hub)  # upstream MCP tools are known once their servers are reached
    if mcp and hub is not None:
        rows = _run(lambda: tool_rows(hub, connector))
    else:
        rows = tool_list((t for c in connectors.values() for t in c.tools()), connector, {})
    columns = (
        {"name": "name", "access": "access", "state": "state"}
        if mcp
        else {"name": "name", "access": "access"}
    )
    show(out, rows, {**columns, "description": "summary"}, as_json=as_json)
    if as_json:
        return
    if connector is not None and hasattr(connectors[connector], "report"):
        print_report(connectors[connector], out)
    elif connector is None:
        print_failed(connectors.values(), out)


def _listed(config: Path | None, database: str | None) -> tuple[Hub | None, dict[str, Any]]:
    """The connectors to list: built from their documents alone when all are OpenAPI (no hub, no
    database, no MCP SDK: the command costs about what reading the documents costs), else the hub's."""
    settings = _settings(config, database)
    try:
        light = document_connectors(settings)
    except ToolbridgeError as exc:
        _fail(exc)
    if light is not None:
        return None, light
    hub = _hub(config, database, settings)
    return hub, {n: hub.connector(n) for n in hub.connector_names()}


def _known(name: str, names: list[str]) -> str:
    listing = f"configured: {', '.join(sorted(names))}" if names else "no connectors are configured"
    return "; ".join(h for h in (did_you_mean(close_matches(name, names)), listing) if h)


@tools_app.command("approve")
def tools_approve(
    names: Annotated[list[str] | None, typer.Argument(help="Tools to approve (as 'connector.tool')")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Approve every tool not approved yet")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Approve upstream MCP tool definitions (pins them); shows flags and what changed first."""
    if not names and not all_:
        raise typer.BadParameter("name the tools to approve, or pass --all")
    from toolbridge.cli._mcp import approve

    hub = _hub(config, database)
    approved = _run(lambda: approve(hub, names or [], everything=all_, console=out))
    out.print(f"approved {len(approved)} tool(s)" + (f": {', '.join(approved)}" if approved else ""))


@tools_app.command("show")
def tools_show(name: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Show one tool with its input schema and how a call's idempotency key reaches its upstream."""
    from toolbridge.catalog import QUARANTINE_META_KEY, quarantine_error
    from toolbridge.policy import Principal
    from toolbridge.resilience._outbox import key_handling
    from toolbridge.surfaces.rest import tool_document

    _configured(config)
    hub = _hub(config, database, peek=True)

    async def main() -> dict[str, Any]:
        async with hub:  # an upstream MCP server's tools are known once it is reached ('tools list' does)
            try:
                tool = hub.catalog.get(name)  # the operator's view: quarantined tools too, as 'tools list'
            except ToolNotFound as exc:
                raise hub.with_guesses(Principal.local(), exc) from None
            shown = {**tool_document(tool), "idempotency_key": key_handling(hub.key_carrier(tool))}
            if QUARANTINE_META_KEY in tool.meta:
                shown["quarantined"] = quarantine_error(tool).message
            return shown

    out.print_json(json.dumps(_run(main)))


@tools_app.command("search")
def tools_search(
    query: Annotated[str, typer.Argument(help="The task in words, e.g. 'post a message to a channel'")],
    limit: Annotated[int, typer.Option(min=1, max=50, help="How many tools")] = 10,
    connector: Annotated[str | None, typer.Option(help="Only this connector's tools")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only tools with this tag (repeatable)")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The answer as GET /v1/tools?q= gives it")] = False,
) -> None:
    """Find tools by what they do: the index behind MCP search mode and GET /v1/tools?q=."""
    from toolbridge.policy import Principal
    from toolbridge.surfaces._tool_search import search_document

    _configured(config)
    hub = _hub(config, database, peek=True)

    async def main() -> dict[str, Any]:
        async with hub:  # upstream MCP tools are known once their servers are reached
            await _embedded(hub)
            return search_document(
                hub, Principal.local(), query, limit=limit, connector=connector, tags=tag or ()
            )

    answer = _run(main)
    if as_json:
        print(json.dumps(answer, ensure_ascii=False))
        return
    for written, read in answer.get("read_as", {}).items():
        err.print(f"[dim]read {written!r} as {read!r}[/]", highlight=False)
    rows = [{**t, "access": "read" if t["read_only"] else "write"} for t in answer["tools"]]
    show(
        out, rows, {"score": "score", "name": "name", "access": "access", "summary": "summary"}, as_json=False
    )
    if answer.get("good_match") is False:
        out.print(f"no good match: {answer['hint']}")
        for item in answer["connectors"]:
            out.print(f"  {item['name']}: {item['covers']}")


async def _embedded(hub: Hub) -> None:
    """Wait for the tools' embeddings, so the answer is the server's (fused), not BM25F's alone."""
    catalog = hub.catalog
    missing = await anyio.to_thread.run_sync(catalog.embeddings_missing)
    if missing:
        cache = catalog.embedding_cache
        kept = f", kept in {cache.path} for later searches" if cache is not None and cache.path else ""
        err.print(f"[dim]embedding {missing} tools for search (once{kept})…[/]", highlight=False)
    await anyio.to_thread.run_sync(catalog.wait_for_embeddings)


def _parse_args(pairs: list[str], raw: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = json.loads(raw) if raw else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--arg")
        try:
            arguments[key] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key] = value
    return arguments


@app.command()
def call(
    tool: str,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", "-a", help="key=value (value parsed as JSON if it can be)")
    ] = None,
    json_args: Annotated[str | None, typer.Option("--json", help="All arguments as one JSON object")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    redis: RedisOption = None,
) -> None:
    """Call a tool in-process (audited like any other call) and print its result."""
    from toolbridge.policy import Principal

    arguments = _parse_args(arg or [], json_args)
    _configured(config)
    hub = _hub(config, database, redis=redis)

    async def main() -> str:
        async with hub:
            try:
                result = await hub.call(Principal.local(), tool, arguments)
            except ToolNotFound as exc:
                if not exc.suggestions:  # its hint named tools/list and GET /v1/tools: not this command's
                    listing = "toolbridge tools list" + (f" -c {config}" if config else "")
                    exc.hint = f"see the tools with '{listing}'"
                raise
            return result.text

    text = _run(main)
    out.print(text, highlight=False, markup=False, soft_wrap=True)


# -- agents ---------------------------------------------------------------------------------------


@agents_app.command("create")
def agents_create(
    name: str,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="Tool pattern, e.g. 'notes.*' or 'github.*:read'"),
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create an agent (or a new key for an existing one). The key is shown once."""
    hub = _hub(config, database)

    async def main() -> str:
        async with hub:
            return await hub.agents.create(name, scope or [])

    key = _run(main)
    err.print(f"created a key for agent {name!r}; it is shown once, store it now:")
    print(key)


@agents_app.command("list")
def agents_list(
    config: ConfigOption = None, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """List agents with their scopes and number of active keys."""
    hub = _hub(config, database, recorded=True)

    async def main() -> Any:
        async with hub:
            return await hub.agents.list()

    rows = [
        {
            "name": a.name,
            "scopes": list(a.scopes),
            "source": a.source,
            "active_keys": a.active_keys,
            "created_at": a.created_at.isoformat(timespec="seconds"),
        }
        for a in _run(main)
    ]
    columns = {"name": "name", "scopes": "scopes", "source": "source", "active keys": "active_keys"}
    show(out, rows, {**columns, "created": "created_at"}, as_json=as_json)


@agents_app.command("revoke")
def agents_revoke(name: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Revoke every key of an agent."""
    hub = _hub(config, database)

    async def main() -> int:
        async with hub:
            return await hub.agents.revoke(name)

    out.print(f"revoked {_run(main)} key(s) of agent {name!r}")


@app.command()
def health(
    url: Annotated[
        str, typer.Option(envvar="TOOLBRIDGE_URL", help="The running server")
    ] = "http://127.0.0.1:8080",
    key: Annotated[str | None, typer.Option(envvar="TOOLBRIDGE_API_KEY", help="An agent's API key")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show each connector's breaker, retry budget, rate-limit hold and ejected connections on a running
    server."""
    from toolbridge.client import Client

    if not key:
        err.print("[bold red]error:[/] an API key is needed (--key or TOOLBRIDGE_API_KEY)")
        raise typer.Exit(1)

    async def main() -> list[dict[str, Any]]:
        async with Client(url, api_key=key) as client:
            return await client.health()

    rows = _run(main)
    if not as_json:
        rows = [{**r, "failure_rate": f"{r['failure_rate']:.0%}", "ejected": _ejected(r)} for r in rows]
    columns = {"connector": "connector", "breaker": "breaker", "failure rate": "failure_rate"}
    columns |= {"attempts": "attempts", "in flight": "in_flight", "retry tokens": "retry_tokens"}
    columns |= {"held (s)": "held_for", "ejected": "ejected"}
    show(out, rows, {**columns, "upstream": "upstream"}, as_json=as_json)


def _ejected(row: dict[str, Any]) -> str:
    """The connections taken out for failing (``conn_… 27 s``), for the health table."""
    return ", ".join(f"{e.get('connection', '?')} {e['seconds_left']:.0f} s" for e in row.get("ejected", []))


# -- audit ----------------------------------------------------------------------------------------


@audit_app.command("tail")
def audit_tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many rows")] = 20,
    tool: Annotated[str | None, typer.Option(help="Only this tool")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Show the newest audit rows."""
    hub = _hub(config, database, recorded=True)

    async def main() -> Any:
        async with hub:
            return await hub.audit.tail(lines, tool=tool)

    records = _run(main)
    if as_json:
        for record in records:
            print(json.dumps(record.as_dict()))
        return
    table = Table("seq", "time", "principal", "tool", "outcome", "error", "ms", "request")
    for r in records:
        e = r.entry
        table.add_row(
            str(r.seq),
            e.ts.isoformat(timespec="seconds"),
            e.principal,
            e.tool,
            e.outcome,
            e.error_code or "",
            f"{e.duration_ms:.2f}",
            e.request_id,
        )
    out.print(table)


@audit_app.command("verify")
def audit_verify(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Recompute the hash chain; exit 1 and name the first bad row if anything was changed."""
    hub = _hub(config, database, recorded=True)

    async def main() -> Any:
        async with hub:
            return await hub.audit.verify()

    result = _run(main)
    if result.ok:
        out.print(f"audit log intact: {result.checked} rows verified")
        return
    where = f"at row {result.first_bad_seq}" if result.first_bad_seq is not None else "at the end"
    err.print(
        f"[bold red]audit log tampered {where}:[/] {result.reason} ({result.checked} rows good before it)"
    )
    raise typer.Exit(1)


def main() -> None:
    """Console-script entry point: an operating-system error is one line, not a traceback."""
    try:
        app(prog_name="toolbridge")
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        err.print(f"[bold red]error:[/] {escape(exc.strerror or str(exc))}{escape(where)}", highlight=False)
        err.print("[dim]hint:[/] check the path or permission named above", highlight=False)
        raise SystemExit(1) from None


__all__ = ["app", "main"]
