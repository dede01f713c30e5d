"""docs/graphql.md: its configuration and Python examples work as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests._patience import patience
from tests.connectors.graphql.conftest import SHOP
from toolbridge import Hub, Principal
from toolbridge.connectors import Invocation
from toolbridge.connectors.graphql import GraphQLConnector, parse_schema
from toolbridge.settings import parse_settings

DOC = Path(__file__).parents[3] / "docs" / "graphql.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_yaml_example_configures_what_it_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = blocks("yaml")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "shop.graphql").symlink_to(SHOP)
    config = tmp_path / "toolbridge.yaml"
    config.write_text("server: {database: 'sqlite+aiosqlite:///:memory:'}\n" + block)
    monkeypatch.setenv("SHOP_TOKEN", "t0ken")
    hub = Hub.from_settings(parse_settings(config.read_text(), source=config))
    connector = hub.connector("shop")
    assert isinstance(connector, GraphQLConnector) and connector.status is None
    assert connector.description == "The shop: users, orders"
    names = {t.name for t in connector.tools()}
    assert "shop.create_user" in names and "shop.delete_user" not in names


def test_the_python_example_runs(shop_server: str, tmp_path: Path) -> None:
    [block] = blocks("python")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "shop.graphql").symlink_to(SHOP)
    script = block.replace("http://127.0.0.1:4000", shop_server) + "\nimport anyio\nanyio.run(main)\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=patience(60)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'name': 'Ada', 'role': 'ADMIN'}"


def test_a_one_of_input_takes_exactly_one_field_not_null() -> None:
    schema = parse_schema("input Pick @oneOf { a: Int, b: String }\ntype Query { f(p: Pick!): Int }", "t")
    (tool,) = GraphQLConnector("c", "https://c.test/g", schema).tools()
    pick = tool.input_schema["$defs"]["Pick"]
    assert pick["minProperties"] == pick["maxProperties"] == 1
    assert pick["properties"]["a"]["type"] == "integer" and pick["properties"]["b"]["type"] == "string"


@pytest.mark.anyio
async def test_an_idempotency_header_goes_with_mutations_only() -> None:
    """``idempotency_header`` (docs: "a keyed mutation then carries it"); queries never carry a key."""
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append((body["operationName"], request.headers.get("idempotency-key")))
        field = body["operationName"][0].lower() + body["operationName"][1:]
        return httpx2.Response(200, json={"data": {field: True}})

    connector = GraphQLConnector.from_schema(
        "shop", "https://shop.test/graphql", SHOP,
        transport=httpx2.MockTransport(answer), idempotency_header="Idempotency-Key",
    )  # fmt: skip
    tools = {t.operation: t for t in connector.tools()}
    assert connector.idempotency_key_carrier(tools["delete_user"]) == "header Idempotency-Key"
    assert connector.idempotency_key_carrier(tools["whoami"]) is None
    invocation = Invocation(Principal.local(), "r1", idempotency_key="k-42")
    async with connector:
        await connector.invoke(tools["delete_user"], {"id": "1"}, invocation)
        await connector.invoke(tools["whoami"], {}, invocation)
    assert seen == [("DeleteUser", "k-42"), ("Whoami", None)]
