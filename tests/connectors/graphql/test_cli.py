"""``toolbridge add graphql`` and ``toolbridge tools list`` for GraphQL connectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.connectors.graphql.conftest import SHOP
from toolbridge.cli import app
from toolbridge.settings import GraphQLConnectorSettings, load_settings


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


def test_add_graphql_writes_a_connector_that_loads(tmp_path: Path) -> None:
    (tmp_path / "shop.graphql").write_text(SHOP.read_text())
    config = tmp_path / "toolbridge.yaml"
    schema = str(tmp_path / "shop.graphql")
    code, output = run(
        "add", "graphql", "shop", "https://api.shop.test/graphql", "--schema", schema,
        "--bearer", "env:SHOP_TOKEN", "-c", str(config),
    )  # fmt: skip
    assert code == 0, output
    assert "11 tools (2 mutations)" in output
    shop = load_settings(config).connectors["shop"]
    assert isinstance(shop, GraphQLConnectorSettings)
    assert shop.schema_ == "shop.graphql" and shop.endpoint == "https://api.shop.test/graphql"
    code, output = run("tools", "list", "shop", "-c", str(config))
    assert code == 0 and "shop.create_user" in output and "write" in output, output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--schema", "nope.graphql"], "nope.graphql: no such file"),
        (["--bearer", "t0ken"], "expected env:VARIABLE"),
        ([], "refused by the SSRF guard"),  # introspection of 127.0.0.1 without --allow-host
    ],
)
def test_add_graphql_refuses_what_would_not_work(tmp_path: Path, extra: list[str], message: str) -> None:
    config = tmp_path / "toolbridge.yaml"
    if "--bearer" in extra:
        extra = [*extra, "--schema", str(SHOP)]
    code, output = run("add", "graphql", "shop", "http://127.0.0.1:9/graphql", *extra, "-c", str(config))
    assert code == 1 and message in output, output
    assert not config.exists()


def test_add_graphql_by_introspection_of_an_allowed_host(shop_server: str, tmp_path: Path) -> None:
    config = tmp_path / "toolbridge.yaml"
    host = shop_server.split("/")[2]
    code, output = run(
        "add", "graphql", "live", f"{shop_server}/graphql", "--allow-host", host, "-c", str(config)
    )
    assert code == 0 and "11 tools" in output, output
    live = load_settings(config).connectors["live"]
    assert isinstance(live, GraphQLConnectorSettings) and live.allow_hosts == [host]


def test_tools_list_names_a_connector_whose_schema_failed(tmp_path: Path) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  shop:\n    kind: graphql\n    endpoint: https://api.shop.test/graphql\n"
        "    schema: missing.graphql\n"
    )
    code, output = run("tools", "list", "-c", str(config))
    assert code == 0, output
    assert "failed: connector 'shop'" in output and "missing.graphql: no such file" in output
