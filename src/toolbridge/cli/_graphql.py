"""``toolbridge add graphql NAME ENDPOINT``: a GraphQL connector written into toolbridge.yaml.

The schema is read first (the ``--schema`` file, or the endpoint's answer to introspection): a connector
whose schema cannot be read is not written. Registered on ``toolbridge add`` by :mod:`toolbridge.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolbridge.cli._openapi import add_app, check_name, fail, relative_path, with_connector
from toolbridge.cli._output import console
from toolbridge.errors import ConfigurationError, ToolbridgeError

__all__ = ["add_graphql"]

out = console()


@add_app.command("graphql")
def add_graphql(
    name: Annotated[str, typer.Argument(help="Connector name: the prefix of its tools, e.g. 'shop'")],
    endpoint: Annotated[
        str, typer.Argument(help="The API's GraphQL URL, e.g. https://api.example.com/graphql")
    ],
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="SDL or introspection-result file (default: introspect the endpoint)"),
    ] = None,
    bearer: Annotated[
        str | None,
        typer.Option("--bearer", help="env:VARIABLE holding a bearer token sent with every call"),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="HOST or HOST:PORT introspection may reach although not public"),
    ] = None,
    config: Annotated[
        Path, typer.Option("--config", "-c", envvar="TOOLBRIDGE_CONFIG", help="toolbridge.yaml to edit")
    ] = Path("toolbridge.yaml"),
) -> None:
    """Add a GraphQL connector to toolbridge.yaml (the schema is read and checked first)."""
    from toolbridge.connectors.graphql import GraphQLConnector

    try:
        check_name(name)
        hosts = allow_host or []
        connector = GraphQLConnector.from_schema(name, endpoint, schema, allow_hosts=hosts)
        entry = _entry(endpoint, schema, config, bearer, hosts)
        updated = with_connector(config, name, entry)
    except ToolbridgeError as exc:
        fail(exc)
    config.write_text(updated, encoding="utf-8")
    tools = connector.tools()
    writes = sum(1 for t in tools if not t.annotations.read_only)
    out.print(
        f"added connector {name!r} to {config}: {len(tools)} tools ({writes} mutations)", highlight=False
    )
    out.print(f"see its tools with: toolbridge tools list {name} -c {config}", highlight=False)


def _entry(
    endpoint: str, schema: str | None, config: Path, bearer: str | None, hosts: list[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "graphql", "endpoint": endpoint}
    if schema is not None:
        entry["schema"] = relative_path(schema, config)
    if bearer is not None:
        if not bearer.startswith("env:") or len(bearer) == 4:
            raise ConfigurationError(
                f"--bearer {bearer!r}: expected env:VARIABLE", hint="for example --bearer env:SHOP_TOKEN"
            )
        entry["connections"] = {"scheme": "bearer", "secret": bearer}
    if hosts:
        entry["allow_hosts"] = hosts
    return entry
