"""``toolbridge add openapi NAME SPEC``, and the ingest report shown by ``toolbridge tools list NAME``.

Registered by :mod:`toolbridge.cli`; kept apart so the CLI module stays small.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from toolbridge.cli._output import console
from toolbridge.errors import ConfigurationError, ToolbridgeError

if TYPE_CHECKING:
    from toolbridge.settings import Settings

__all__ = [
    "add_app",
    "check_name",
    "document_connectors",
    "fail",
    "insert_connector",
    "print_failed",
    "print_report",
    "relative_path",
    "validate",
    "with_connector",
]

add_app = typer.Typer(help="Add a connector to toolbridge.yaml.", no_args_is_help=True)
out = console()
err = console(stderr=True)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_EMPTY_CONFIG = "version: 1\n"


@add_app.command("openapi")
def add_openapi(
    name: Annotated[str, typer.Argument(help="Connector name: the prefix of its tools, e.g. 'github'")],
    spec: Annotated[str, typer.Argument(help="Path or http(s) URL of the OpenAPI / Swagger document")],
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="Override the document's servers")
    ] = None,
    auth: Annotated[
        list[str] | None,
        typer.Option("--auth", help="SCHEME=env:VARIABLE: where a security scheme's secret comes from"),
    ] = None,
    include_tag: Annotated[
        list[str] | None, typer.Option("--include-tag", help="Only operations with this tag (repeatable)")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="HOST or HOST:PORT the hub may reach although not public, e.g. an internal document "
            "server (repeatable; written to allow_hosts)",
        ),
    ] = None,
    spec_root: Annotated[
        Path | None,
        typer.Option(
            "--spec-root",
            help="Folder whose files the document's $refs may read, when they reach above its own folder "
            "(written to spec_root)",
        ),
    ] = None,
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to edit")
    ] = Path("toolbridge.yaml"),
) -> None:
    """Add an OpenAPI connector to toolbridge.yaml (the document is loaded and checked first)."""
    from toolbridge.connectors.openapi import OpenAPIConnector

    try:
        check_name(name)
        hosts = allow_host or []
        connector = OpenAPIConnector.from_spec(
            name, spec, base_url=base_url, allow_hosts=hosts, spec_root=spec_root
        )
        entry = _entry(spec, config, base_url, _connection(connector, auth or []), include_tag or [])
        if hosts:
            entry["allow_hosts"] = hosts
        if spec_root is not None:
            entry["spec_root"] = relative_path(str(spec_root), config)
        updated = with_connector(config, name, entry)
    except ToolbridgeError as exc:
        fail(exc)
    config.write_text(updated, encoding="utf-8")
    out.print(f"added connector {name!r} to {config}: {connector.report.summary()}", highlight=False)
    _print_needs(connector, auth or [])
    out.print(f"see its tools with: toolbridge tools list {name} -c {config}", highlight=False)


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"{name!r} is not a valid connector name",
            hint="use lower-case letters, digits, '_' and '-' (at most 40), starting with a letter or digit",
        )


def _entry(
    spec: str, config: Path, base_url: str | None, connection: dict[str, Any] | None, tags: list[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "openapi", "spec": relative_path(spec, config)}
    if base_url:
        entry["base_url"] = base_url
    if connection:
        entry["connections"] = connection
    if tags:
        entry["include"] = {"tags": tags}
    return entry


def relative_path(spec: str, config: Path) -> str:
    """URLs as given; a path relative to the config file's folder (as toolbridge.yaml reads it)."""
    if spec.startswith(("http://", "https://", "file://")):
        return spec
    target = Path(spec).resolve()
    try:
        return target.relative_to(config.resolve().parent).as_posix()
    except ValueError:
        return str(target)


def _connection(connector: Any, pairs: list[str]) -> dict[str, Any] | None:
    """``--auth SCHEME=env:VARIABLE`` options → the connection that sends those secrets."""
    if not pairs:
        return None
    from toolbridge.assembly._legacy_auth import connection_fields

    return connection_fields(_auth_refs(pairs), connector.security_schemes, os.environ)


def _auth_refs(pairs: list[str]) -> dict[str, str]:
    refs: dict[str, str] = {}
    for pair in pairs:
        scheme, sep, ref = pair.partition("=")
        if not sep or not ref.startswith("env:"):
            raise ConfigurationError(
                f"--auth {scheme}=…: expected SCHEME=env:VARIABLE",
                hint="for example --auth api_key=env:API_KEY",
            )
        refs[scheme] = ref
    return refs


def with_connector(config: Path, name: str, entry: dict[str, Any]) -> str:
    """The text of ``config`` (a new file if it does not exist) with the connector added and checked."""
    text = config.read_text(encoding="utf-8") if config.exists() else _EMPTY_CONFIG
    updated = insert_connector(text, name, entry)
    validate(updated, config)
    return updated


def insert_connector(text: str, name: str, entry: dict[str, Any]) -> str:
    """``text`` (a toolbridge.yaml) with ``connectors.<name>`` added; comments and layout kept."""
    root = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    section = _section(root, "connectors")
    if section is None:
        return "".join(lines) + "connectors:\n" + _block(name, entry, "  ")
    key, value = section
    if isinstance(value, yaml.MappingNode) and value.value and value.flow_style is False:
        if any(k.value == name for k, _ in value.value):
            raise ConfigurationError(
                f"connector {name!r} is already in the file", hint="choose another name or edit it there"
            )
        indent = " " * value.value[0][0].start_mark.column
        end = value.end_mark.line if value.end_mark.column == 0 else value.end_mark.line + 1
        return "".join(lines[:end]) + _block(name, entry, indent) + "".join(lines[end:])
    line = key.start_mark.line
    rest = lines[line + 1 :] if value.start_mark.line == line else lines[value.end_mark.line + 1 :]
    return "".join(lines[:line]) + "connectors:\n" + _block(name, entry, "  ") + "".join(rest)


def _section(root: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(root, yaml.MappingNode):
        return None
    for k, v in root.value:
        if k.value == key:
            return k, v
    return None


def _block(name: str, entry: dict[str, Any], indent: str) -> str:
    dumped = yaml.safe_dump({name: entry}, sort_keys=False, default_flow_style=False, indent=2)
    return "".join(indent + line + "\n" for line in dumped.splitlines())


def validate(text: str, config: Path) -> None:
    from toolbridge.settings import parse_settings

    parse_settings(text, source=config)


def _print_needs(connector: Any, given: list[str]) -> None:
    configured = {pair.partition("=")[0] for pair in given}
    for scheme in connector.security_needs():
        if scheme.name not in configured:
            out.print(
                f"  it needs {scheme.describe()}: add --auth {scheme.name}=env:VARIABLE "
                "(or a 'connections:' block in the file: docs/openapi.md#credentials-from-connections)",
                highlight=False,
            )


def document_connectors(settings: Settings) -> dict[str, Any] | None:
    """The connectors, built from their documents alone, when every one is ``kind: openapi`` or ``kind:
    graphql`` (listing them needs no hub, database or MCP SDK); None when some connector needs the hub."""
    from toolbridge.settings import GraphQLConnectorSettings, OpenAPIConnectorSettings

    configs = settings.connectors
    kinds = (OpenAPIConnectorSettings, GraphQLConnectorSettings)
    if not configs or not all(isinstance(c, kinds) for c in configs.values()):
        return None
    built: dict[str, Any] = {}
    for name, config in configs.items():
        if isinstance(config, OpenAPIConnectorSettings):
            from toolbridge.assembly._openapi import openapi_connector

            built[name] = openapi_connector(name, config, settings)
        elif isinstance(config, GraphQLConnectorSettings):
            from toolbridge.assembly._graphql import graphql_connector

            built[name] = graphql_connector(name, config, settings)
    return built


def print_report(connector: Any, console: Console) -> None:
    """The ingest report of an OpenAPI connector: the error, or every operation skipped/degraded/excluded."""
    report = connector.report
    console.print(escape(report.summary()), highlight=False)
    for issue in report.issues:
        console.print(f"  {escape(str(issue))}", highlight=False, soft_wrap=True)


def print_failed(connectors: Iterable[Any], console: Console) -> None:
    """One line per connector whose document or schema could not be used (it has no tools, so no rows)."""
    for connector in connectors:
        report = getattr(connector, "report", None)
        status = getattr(connector, "status", None)
        if report is not None and report.error:
            problem = report.summary()
        elif report is None and isinstance(status, str) and status.startswith("failed: "):
            problem = status.removeprefix("failed: ")  # a GraphQL connector whose schema was unreadable
        else:
            continue
        console.print(
            f"[bold red]failed:[/] connector {escape(connector.name)!r}: {escape(problem)}", highlight=False
        )


def fail(exc: ToolbridgeError) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False)
    raise typer.Exit(1)
