"""``$ref`` everywhere a document may put one, required-ness from the schema that declares it, and the
words of tools: on tests/specs/split-api (operations kept in other files) and small inline documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.connectors.openapi.conftest import ingested, openapi, source
from toolbridge.connectors.openapi import OpenAPIConnector, ingest
from toolbridge.connectors.openapi._request import build_request
from toolbridge.errors import InvalidArguments

SPLIT = Path(__file__).parents[2] / "specs" / "split-api" / "openapi.yaml"
OK = {"200": {"description": "ok"}}


@pytest.fixture(scope="module")
def split() -> OpenAPIConnector:
    return OpenAPIConnector.from_spec("api", SPLIT)


def schema_of(connector: OpenAPIConnector, name: str) -> dict[str, Any]:
    return dict(next(t for t in connector.tools() if t.name == f"api.{name}").input_schema)


def test_operations_kept_in_other_files_become_whole_tools(split: OpenAPIConnector) -> None:
    report = split.report
    assert (report.operations, report.tools, report.issues) == (8, 8, ()), report.issues
    listed = schema_of(split, "keys_list")
    assert set(listed["properties"]) == {"per_page", "page"}
    get = schema_of(split, "keys_get")
    assert get["required"] == ["key_identifier"]
    assert next(t for t in split.tools() if t.name == "api.keys_get").description == (
        "Retrieve an existing SSH key"
    )


def test_a_properties_map_kept_elsewhere_is_read_as_properties(split: OpenAPIConnector) -> None:
    created = schema_of(split, "keys_create")
    assert set(created["properties"]) == {"public_key", "name"}  # id and fingerprint are readOnly
    assert "$ref" not in created["properties"]


def test_a_path_item_kept_elsewhere_brings_its_parameters_and_words(split: OpenAPIConnector) -> None:
    patch = schema_of(split, "projects_patch")
    assert patch["properties"]["project_id"]["format"] == "uuid"
    get = next(t for t in split.tools() if t.name == "api.projects_get")
    assert get.description.startswith("One project")  # no summary of its own: the path item's


def test_body_fields_are_required_by_the_body_schema_even_when_the_body_is_not(
    split: OpenAPIConnector,
) -> None:
    assert schema_of(split, "keys_create")["required"] == ["public_key", "name"]
    patch = schema_of(split, "projects_patch")
    assert patch["required"] == ["project_id", "name"]
    assert patch["properties"]["settings"]["required"] == ["region"]
    whole = only(
        openapi(
            {
                "/x": {
                    "post": {
                        "requestBody": {"content": {"application/json": {"schema": TWO_SHAPES}}},
                        "responses": OK,
                    }
                }
            }
        )
    )
    assert whole["required"] == ["body"]


TWO_SHAPES = {
    "type": "object",
    "properties": {"a": {"type": "string"}},
    "required": ["a"],
    "additionalProperties": True,
}


def only(document: dict[str, Any]) -> dict[str, Any]:
    (tool,) = ingested(document).tools
    return dict(tool.input_schema)


def test_an_operation_ref_that_cannot_be_followed_is_skipped_with_its_pointer() -> None:
    doc = openapi({"/a": {"get": {"$ref": "ops.yaml#/nope"}}})
    report = ingest(source(doc), "api").report
    (issue,) = report.skipped
    assert issue.pointer == "/paths/~1a/get" and "unresolvable $ref 'ops.yaml#/nope'" in issue.reason


def test_a_schema_ref_that_cannot_be_followed_degrades_the_tool_and_names_the_file() -> None:
    other = "file:///api/models.yaml"
    doc = openapi({"/a": {"get": {"$ref": "ops.yaml#/get"}}})
    ops = {
        "get": {
            "operationId": "a",
            "parameters": [{"name": "q", "in": "query", "schema": {"$ref": "models.yaml#/Gone"}}],
            "responses": OK,
        }
    }
    ingested_ = ingest(source(doc, **{"file:///api/ops.yaml": ops, other: {}}), "api")
    (issue,) = ingested_.report.degraded
    assert issue.pointer == "/paths/~1a/get" and issue.operation == "api.a"
    assert "ops.yaml#/get/parameters/0/schema: unresolvable $ref 'models.yaml#/Gone'" in issue.reason
    assert ingested_.tools[0].input_schema["properties"]["q"] == {}


def test_an_undeclared_path_placeholder_becomes_a_required_argument_and_is_reported() -> None:
    report_and_tools = ingested(
        openapi({"/keys/{key_id}": {"delete": {"operationId": "d", "responses": OK}}})
    )
    (tool,) = report_and_tools.tools
    assert tool.input_schema["required"] == ["key_id"]
    (issue,) = report_and_tools.report.degraded
    assert "path parameter 'key_id' is not declared" in issue.reason


def test_a_call_that_would_leave_a_placeholder_in_the_url_is_refused(split: OpenAPIConnector) -> None:
    operation = split.operation("api.keys_get")
    with pytest.raises(InvalidArguments) as caught:
        build_request(operation, {}, "https://api.example.com/v1")
    assert "'key_identifier'" in caught.value.message and "{key_identifier}" in caught.value.message
    draft = build_request(operation, {"key_identifier": 7}, "https://api.example.com/v1")
    assert draft.url == "https://api.example.com/v1/keys/7"


def test_parameter_descriptions_survive_hard_line_wraps() -> None:
    text = "Either the ID or the fingerprint of an\nexisting SSH key. Find it with\nkeys_list."
    param = {"name": "k", "in": "query", "description": text, "schema": {"type": "string"}}
    schema = only(openapi({"/a": {"get": {"parameters": [param], "responses": OK}}}))
    assert (
        schema["properties"]["k"]["description"] == "Either the ID or the fingerprint of an existing SSH key."
    )
    listed = {**param, "description": "Sort order:\n- asc\n- desc"}
    schema = only(openapi({"/a": {"get": {"parameters": [listed], "responses": OK}}}))
    assert schema["properties"]["k"]["description"] == "Sort order:\n- asc\n- desc"


def test_an_operation_without_words_takes_its_path_items() -> None:
    doc = openapi({"/a": {"summary": "The A", "post": {"summary": "", "responses": OK}}})
    (tool,) = ingested(doc).tools
    assert tool.description == "The A"
    (bare,) = ingested(openapi({"/a": {"post": {"summary": "", "responses": OK}}})).tools
    assert bare.description == "POST /a"


def test_a_parameter_that_cannot_be_read_is_reported_not_dropped_silently() -> None:
    params = [{"name": "q", "in": "body-ish", "schema": {"type": "string"}}, "nonsense"]
    result = ingested(openapi({"/a": {"get": {"operationId": "a", "parameters": params, "responses": OK}}}))
    (issue,) = result.report.degraded
    assert "/paths/~1a/get/parameters/0: a parameter without a name or known 'in' left out" in issue.reason
    assert "/paths/~1a/get/parameters/1: a parameter that is not an object left out" in issue.reason
