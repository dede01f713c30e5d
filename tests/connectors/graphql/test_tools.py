"""A schema's root fields as tools: names, annotations, input schemas, default selections, ``select``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from graphql import build_schema, introspection_from_schema, parse, validate

from tests.connectors.graphql.conftest import SHOP
from toolbridge import InvalidArguments
from toolbridge.connectors.graphql import GraphQLConnector, parse_schema
from toolbridge.errors import ConfigurationError


@pytest.fixture(scope="module")
def shop() -> GraphQLConnector:
    return GraphQLConnector.from_schema("shop", "https://shop.test/graphql", SHOP)


def schema_of(shop: GraphQLConnector, tool: str) -> dict[str, Any]:
    (found,) = [t for t in shop.tools() if t.name == f"shop.{tool}"]
    return dict(found.input_schema)


def test_every_query_and_mutation_field_is_a_tool_named_in_snake_case(shop: GraphQLConnector) -> None:
    names = [t.name for t in shop.tools()]
    assert names == [
        "shop.user", "shop.users", "shop.search", "shop.node", "shop.effects", "shop.whoami", "shop.broken",
        "shop.fragile", "shop.echo", "shop.create_user", "shop.delete_user",
    ]  # fmt: skip
    user = shop.tools()[0]
    assert user.description.startswith("One user by id; null when there is none.")


def test_queries_are_read_only_and_mutations_are_writes(shop: GraphQLConnector) -> None:
    tools = {t.operation: t.annotations for t in shop.tools()}
    assert tools["user"].read_only and tools["user"].idempotent
    assert not tools["create_user"].read_only and not tools["create_user"].idempotent
    assert not tools["create_user"].destructive
    assert tools["delete_user"].destructive


def test_arguments_become_a_valid_strict_json_schema(shop: GraphQLConnector) -> None:
    schema = schema_of(shop, "create_user")
    jsonschema.Draft202012Validator.check_schema(schema)
    valid = jsonschema.Draft202012Validator(schema)
    ok = {"input": {"name": "Bo", "role": "ADMIN", "referredBy": {"name": "Al", "address": None}}}
    assert list(valid.iter_errors(ok)) == []
    for wrong in (
        {},  # input is required (non-null, no default)
        {"input": {"role": "ADMIN"}},  # name is required in the input object
        {"input": {"name": "Bo", "role": "OWNER"}},  # not an enum value
        {"input": {"name": "Bo", "age": 3}},  # no such input field
        {"input": {"name": "Bo"}, "extra": 1},
    ):
        assert list(valid.iter_errors(wrong)), wrong
    new_user = schema["$defs"]["NewUser"]
    assert new_user["properties"]["role"]["default"] == "CUSTOMER"
    assert new_user["properties"]["referredBy"]["anyOf"][0] == {"$ref": "#/$defs/NewUser"}


def test_scalars_lists_and_defaults(shop: GraphQLConnector) -> None:
    users = schema_of(shop, "users")
    assert users["properties"]["first"]["type"] == ["integer", "null"]
    assert users["properties"]["first"]["default"] == 10
    assert users["properties"]["first"]["maximum"] == 2**31 - 1
    assert "required" not in users
    assert schema_of(shop, "user")["properties"]["id"]["type"] == [
        "string",
        "integer",
    ]  # ID, as GraphQL takes it
    assert schema_of(shop, "user")["required"] == ["id"]


def test_custom_scalars_are_strings_that_say_their_type() -> None:
    schema = parse_schema(
        '"An instant" scalar DateTime\ntype Query { at(when: DateTime, many: [DateTime!]): String }', "t"
    )
    (tool,) = GraphQLConnector("c", "https://c.test/graphql", schema).tools()
    when = tool.input_schema["properties"]["when"]
    assert when["type"] == ["string", "null"] and "DateTime" in when["description"]
    assert tool.input_schema["properties"]["many"]["items"]["type"] == "string"


def test_default_selection_takes_scalars_and_nested_objects_to_the_depth(shop: GraphQLConnector) -> None:
    user = shop.operation("shop.user")
    assert user.selection == "id name role joined address { city }"  # orders(first:) takes arguments
    deeper = GraphQLConnector("shop", "https://shop.test/graphql", shop.schema, selection_depth=3)
    assert (
        deeper.operation("shop.user").selection
        == "id name role joined address { city country { code name } }"
    )
    assert shop.operation("shop.effects").selection is None


def test_unions_and_interfaces_are_selected_with_typename(shop: GraphQLConnector) -> None:
    search = shop.operation("shop.search").selection
    assert search == "__typename ... on User { id name role joined } ... on Order { id total items }"
    assert shop.operation("shop.node").selection == "__typename id"


def test_every_default_document_is_valid_for_the_schema(shop: GraphQLConnector) -> None:
    for tool in shop.tools():
        document = shop.document(shop.operation(tool.name))
        assert validate(shop.schema, parse(document)) == [], document


def test_arguments_travel_as_variables_only(shop: GraphQLConnector) -> None:
    text = shop.document(shop.operation("shop.users"))
    assert text.startswith("query Users($first: Int, $role: Role) { users(first: $first, role: $role) {")


def test_a_select_is_validated_against_the_schema(shop: GraphQLConnector) -> None:
    user = shop.operation("shop.user")
    text = shop.document(user, "id orders(first: 2) { total }")
    assert "orders(first: 2) { total }" in text
    with pytest.raises(InvalidArguments) as info:
        shop.document(user, "id email")
    assert "Cannot query field 'email' on type 'User'" in info.value.message
    assert info.value.errors[0]["field"] == "select" and "describe_tool" in (info.value.hint or "")


@pytest.mark.parametrize(
    "select",
    [
        'id } } mutation M { deleteUser(id: "1")',  # a second operation smuggled in
        "id } } fragment F on User { id",
        "id {",  # does not parse
        "...on Order { total }",  # not a User
    ],
)
def test_a_select_cannot_break_out_of_its_field(shop: GraphQLConnector, select: str) -> None:
    with pytest.raises(InvalidArguments):
        shop.document(shop.operation("shop.user"), select)


def test_select_on_a_scalar_field_is_refused(shop: GraphQLConnector) -> None:
    with pytest.raises(InvalidArguments, match="does not apply"):
        shop.document(shop.operation("shop.effects"), "id")


def test_include_exclude_and_a_query_and_mutation_of_one_name() -> None:
    schema = parse_schema(
        "type Query { item: Int, items: Int, other: Int }\ntype Mutation { item(v: Int): Int }", "t"
    )
    tools = GraphQLConnector("c", "https://c.test/g", schema, include=["item*"], exclude=["items"]).tools()
    assert [t.name for t in tools] == ["c.item", "c.item_mutation"]


def test_a_field_with_an_argument_named_select_gets_select_fields() -> None:
    schema = parse_schema("type T { a: Int }\ntype Query { pick(select: String): T }", "t")
    (tool,) = GraphQLConnector("c", "https://c.test/g", schema).tools()
    assert set(tool.input_schema["properties"]) == {"select", "select_fields"}


def test_schemas_from_introspection_json_and_bad_files(tmp_path: Path) -> None:
    result = introspection_from_schema(build_schema(SHOP.read_text()))
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"data": result}))
    from_json = GraphQLConnector.from_schema("shop", "https://shop.test/graphql", path)
    assert len(from_json.tools()) == 11
    path.write_text('{"data": {}}')
    with pytest.raises(ConfigurationError, match="no '__schema'"):
        GraphQLConnector.from_schema("shop", "https://shop.test/graphql", path)
    path.write_text("type Query { a: Nope }")
    with pytest.raises(ConfigurationError, match="not a usable GraphQL schema"):
        GraphQLConnector.from_schema("shop", "https://shop.test/graphql", path)
    with pytest.raises(ConfigurationError, match="no such file"):
        GraphQLConnector.from_schema("shop", "https://shop.test/graphql", tmp_path / "missing.graphql")


def test_an_endpoint_that_is_no_http_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        GraphQLConnector("c", "ftp://c.test/graphql", parse_schema("type Query { a: Int }", "t"))
