"""A large real schema (GitHub's, tests/specs/graphql): every root field becomes a valid tool.

Each tool's input schema is a valid JSON Schema (2020-12, as the catalog validates), and its default
operation passes graphql-core's validation against the schema — what the API itself would check first.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import jsonschema
import pytest
from graphql import parse, validate

from toolbridge.connectors.graphql import GraphQLConnector, parse_schema
from toolbridge.connectors.graphql._tools import MAX_DEFAULT_SELECTION

GITHUB = Path(__file__).parents[2] / "specs" / "graphql" / "github.schema.graphql.gz"


@pytest.fixture(scope="module")
def github() -> GraphQLConnector:
    with gzip.open(GITHUB, "rt", encoding="utf-8") as file:
        text = file.read()
    return GraphQLConnector("github", "https://api.github.com/graphql", parse_schema(text, "github"))


def test_every_root_field_is_a_tool(github: GraphQLConnector) -> None:
    schema = github.schema
    assert schema.query_type is not None and schema.mutation_type is not None
    fields = len(schema.query_type.fields) + len(schema.mutation_type.fields)
    assert len(github.tools()) == fields > 250
    names = {t.name for t in github.tools()}
    assert {"github.repository", "github.viewer", "github.create_issue", "github.add_comment"} <= names
    assert all(len(n) <= 64 for n in names)


def test_every_input_schema_is_valid_json_schema(github: GraphQLConnector) -> None:
    for tool in github.tools():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
    create = next(t for t in github.tools() if t.name == "github.create_issue")
    assert create.input_schema["required"] == ["input"]
    assert create.input_schema["$defs"]["CreateIssueInput"]["required"] == ["repositoryId", "title"]


def test_every_default_operation_is_valid_for_the_schema(github: GraphQLConnector) -> None:
    for tool in github.tools():
        text = github.document(github.operation(tool.name))
        assert validate(github.schema, parse(text)) == [], text


def test_a_schema_that_breaks_rules_is_used_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "toolbridge.connectors.graphql")
    schema = parse_schema("type Query { a: Int\n a: Int }", "twice.graphql")
    assert schema.query_type is not None and list(schema.query_type.fields) == ["a"]
    assert "Field 'Query.a' can only be defined once" in caplog.text


def test_a_deep_default_selection_stays_bounded(github: GraphQLConnector) -> None:
    """selection_depth 5 on GitHub's schema selected 270 KB for one field; a default now stays under the
    cap by being taken less deep, and stays valid."""
    deep = GraphQLConnector("github", "https://api.github.com/graphql", github.schema, selection_depth=5)
    sizes = {t.name: len(deep.operation(t.name).selection or "") for t in deep.tools()}
    assert max(sizes.values()) <= MAX_DEFAULT_SELECTION
    repository = deep.document(deep.operation("github.repository"))
    assert validate(github.schema, parse(repository)) == []
    at_two = sum(len(github.operation(t.name).selection or "") for t in github.tools())
    assert sum(sizes.values()) > at_two  # fields whose deeper default fits are deeper than at depth 2
