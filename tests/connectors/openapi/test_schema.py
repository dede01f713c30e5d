"""Schema conversion: $refs (RFC 6901 escapes, other files, cycles), combinators, nullability, read/write."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from tests.connectors.openapi.conftest import ingested, only_tool_schema, openapi, source
from toolbridge.connectors.openapi import ingest


def body_op(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "/things": {
            "post": {
                "operationId": "make",
                "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
                "responses": {"200": {"description": "ok"}},
            }
        }
    }


def body_schema(schema: dict[str, Any], version: str = "3.0.3", **components: Any) -> dict[str, Any]:
    doc = openapi(body_op({"type": "object", "properties": {"x": schema}}), version)
    doc["components"] = {"schemas": components}
    return only_tool_schema(doc)


def test_refs_with_escaped_pointers_resolve() -> None:
    doc = openapi(
        body_op({"type": "object", "properties": {"x": {"$ref": "#/components/schemas/a~1b~0c%20d"}}})
    )
    doc["components"] = {"schemas": {"a/b~c d": {"type": "integer", "minimum": 3}}}
    assert only_tool_schema(doc)["properties"]["x"] == {"type": "integer", "minimum": 3}


def test_refs_into_other_documents_resolve_relative_to_their_file() -> None:
    other = "file:///api/common/types.yaml"
    doc = openapi(body_op({"type": "object", "properties": {"x": {"$ref": "common/types.yaml#/Id"}}}))
    types = {"Id": {"$ref": "#/Base"}, "Base": {"type": "string", "format": "uuid"}}
    (tool,) = ingest(source(doc, **{other: types}), "api").tools
    assert tool.input_schema["properties"]["x"] == {"type": "string", "format": "uuid"}


def test_recursive_schemas_become_one_def() -> None:
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    }
    schema = body_schema({"$ref": "#/components/schemas/Node"}, Node=node)
    assert schema["properties"]["x"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    Draft202012Validator.check_schema(schema)
    valid = {"x": {"name": "a", "children": [{"name": "b", "children": []}]}}
    assert Draft202012Validator(schema).is_valid(valid)
    assert not Draft202012Validator(schema).is_valid({"x": {"children": [{"name": 1}]}})


def test_all_of_objects_merge_and_keep_every_required_member() -> None:
    base = {
        "type": "object",
        "properties": {"id": {"type": "string", "readOnly": True}, "a": {"type": "string"}},
        "required": ["a", "b"],
    }
    extra = {"type": "object", "properties": {"b": {"type": "integer"}}}
    schema = body_schema({"allOf": [{"$ref": "#/components/schemas/Base"}, extra]}, Base=base)
    assert schema["properties"]["x"] == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }


def test_one_of_becomes_any_of() -> None:
    schema = body_schema(
        {"oneOf": [{"type": "string"}, {"type": "integer"}], "discriminator": {"propertyName": "t"}}
    )
    assert schema["properties"]["x"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_nullable_in_30_and_type_arrays_in_31() -> None:
    assert body_schema({"type": "string", "nullable": True})["properties"]["x"] == {
        "type": ["string", "null"]
    }
    assert body_schema({"type": ["string", "null"]}, "3.1.0")["properties"]["x"] == {
        "type": ["string", "null"]
    }
    # 3.1 has no 'nullable' keyword: it is ignored there
    assert body_schema({"type": "string", "nullable": True}, "3.1.0")["properties"]["x"] == {"type": "string"}
    ref = body_schema({"$ref": "#/components/schemas/S", "nullable": True}, S={"type": "integer"})
    assert ref["properties"]["x"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    enum = body_schema({"type": "string", "enum": ["a"], "nullable": True})["properties"]["x"]
    assert enum == {"type": ["string", "null"], "enum": ["a", None]}


def test_read_only_is_dropped_from_requests_write_only_kept() -> None:
    obj = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "password": {"type": "string", "writeOnly": True},
        },
        "required": ["id", "password"],
    }
    assert body_schema(obj)["properties"]["x"] == {
        "type": "object",
        "properties": {"password": {"type": "string"}},
        "required": ["password"],
    }


def test_examples_titles_and_extensions_are_dropped_descriptions_trimmed() -> None:
    schema = body_schema(
        {"type": "string", "title": "T", "example": "e", "x-foo": 1, "xml": {}, "description": "word " * 100}
    )["properties"]["x"]
    assert set(schema) == {"type", "description"}
    assert len(schema["description"]) <= 160 and schema["description"].endswith("…")


def test_exclusive_bounds_of_30_become_numbers() -> None:
    schema = body_schema({"type": "number", "minimum": 0, "exclusiveMinimum": True})["properties"]["x"]
    assert schema == {"type": "number", "exclusiveMinimum": 0}


def test_a_pattern_python_cannot_compile_is_dropped_and_reported() -> None:
    doc = openapi(body_op({"type": "object", "properties": {"x": {"type": "string", "pattern": "\\p{L}+"}}}))
    result = ingested(doc)
    assert "pattern" not in result.tools[0].input_schema["properties"]["x"]
    (issue,) = result.report.degraded
    assert "not a Python regex" in issue.reason and issue.pointer == "/paths/~1things/post"


def test_members_named_by_pattern_are_kept_beside_additional_properties_false() -> None:
    """A 3.1 document's ``{patternProperties: {'^[a-z]+$': string}, additionalProperties: false}`` (labels
    whose names follow a pattern) lost its patternProperties and kept the refusal: the tool took only an
    empty object, refusing every call that sent a label. Found by an outside probe of 3.1 constructs."""
    labels = {
        "type": "object",
        "patternProperties": {"^[a-z]+$": {"type": "string"}, "^x-(": {"type": "integer"}},
        "propertyNames": {"maxLength": 8},
        "additionalProperties": False,
    }
    schema = body_schema({**labels, "patternProperties": {"^[a-z]+$": {"type": "string"}}}, "3.1.0")
    validator = Draft202012Validator(schema)
    assert validator.is_valid({"x": {"team": "core", "tier": "gold"}})
    assert not validator.is_valid({"x": {"team": 1}})
    assert not validator.is_valid({"x": {"Team": "core"}})
    assert not validator.is_valid({"x": {"teamsandmore": "core"}})
    doc = openapi(body_op({"type": "object", "properties": {"x": labels}}), "3.1.0")
    result = ingested(doc)
    (tool,) = result.tools
    assert Draft202012Validator(tool.input_schema).is_valid(
        {"x": {"Team": "core"}}
    )  # not checked, not refused
    assert "pattern '^x-(' is not a Python regex" in result.report.issues[0].reason
    named = {**labels, "properties": {"name": {"type": "string"}}, "patternProperties": {"^[a-z]+$": {}}}
    whole = only_tool_schema(openapi(body_op(named), "3.1.0"))  # the body itself: one argument, not spread
    assert Draft202012Validator(whole).is_valid({"body": {"name": "n", "team": "core"}})


def test_conditions_and_dependencies_of_31_schemas_are_kept() -> None:
    """``if``/``then``/``else``, ``dependentRequired``, ``dependentSchemas``, ``contains`` and
    ``unevaluatedProperties`` were dropped without a word: the tool took calls the document forbids (a
    circle without its radius, a card without its billing address), which the API then refused. Found by
    an outside probe of 3.1 constructs."""
    shape = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": ["circle", "square"]}, "radius": {}, "side": {}},
        "if": {"properties": {"kind": {"const": "circle"}}},
        "then": {"required": ["radius"]},
        "else": {"required": ["side"]},
    }
    billing = {
        "type": "object",
        "properties": {"card": {"type": "string"}, "address": {"type": "string"}, "vat": {}},
        "dependentRequired": {"card": ["address"]},
        "dependentSchemas": {"vat": {"required": ["address"]}},
    }
    tags = {"type": "array", "items": {"type": "string"}, "contains": {"const": "main"}, "maxContains": 1}
    strict = {"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}], "unevaluatedProperties": False}
    schema = body_schema(
        {
            "type": "object",
            "properties": {"shape": shape, "billing": billing, "tags": tags, "strict": strict},
        },
        "3.1.0",
    )
    validator = Draft202012Validator(schema)
    good = {
        "shape": {"kind": "circle", "radius": 1},
        "billing": {"card": "4", "address": "x"},
        "tags": ["main", "b"],
        "strict": {"a": 1, "b": 2},
    }
    assert validator.is_valid({"x": good})
    for bad in (
        {"shape": {"kind": "circle", "side": 1}},
        {"shape": {"kind": "square", "radius": 1}},
        {"billing": {"card": "4"}},
        {"billing": {"vat": "DE1"}},
        {"tags": ["a"]},
        {"tags": ["main", "main"]},
        {"strict": {"a": 1, "c": 3}},
    ):
        assert not validator.is_valid({"x": bad}), bad
    body = only_tool_schema(openapi(body_op(shape), "3.1.0"))  # the body itself: one argument, not spread
    assert not Draft202012Validator(body).is_valid({"body": {"kind": "circle"}})


def test_an_empty_enum_is_dropped_and_every_tool_using_it_is_reported() -> None:
    # Discord: {type: string, enum: [], allOf: [$ref]} on parameters: kept, it refused every value
    region = {"type": "string", "enum": [], "allOf": [{"$ref": "#/components/schemas/Id"}]}
    param = {"name": "region", "in": "query", "required": True, "schema": region}
    shared = {"type": "object", "properties": {"kind": {"$ref": "#/components/schemas/Kind"}}}
    paths = {
        "/a": {
            "get": {"operationId": "a", "parameters": [param], "responses": {"200": {"description": "ok"}}}
        },
        **body_op({"$ref": "#/components/schemas/Shared"}),
        "/b": {
            "put": body_op({"$ref": "#/components/schemas/Shared"})["/things"]["post"] | {"operationId": "b"}
        },
    }
    doc = openapi(paths, "3.1.0")
    doc["components"] = {
        "schemas": {"Id": {"type": "string", "pattern": "^[0-9]+$"}, "Kind": {"enum": []}, "Shared": shared}
    }
    result = ingested(doc)
    schemas = {tool.name: tool.input_schema for tool in result.tools}
    id_schema = {"type": "string", "pattern": "^[0-9]+$"}
    assert schemas["api.a"]["properties"]["region"] == {"type": "string", "allOf": [id_schema]}
    assert schemas["api.make"]["properties"]["kind"] == schemas["api.b"]["properties"]["kind"] == {}
    reasons = {issue.operation: issue.reason for issue in result.report.degraded}
    assert set(reasons) == {"api.a", "api.make", "api.b"}  # the shared schema: each tool that uses it
    assert reasons["api.a"] == (
        "/paths/~1a/get/parameters/0/schema: an empty 'enum' allows no value; left out"
    )
    assert reasons["api.b"] == "/components/schemas/Kind: an empty 'enum' allows no value; left out"


def test_swagger_x_nullable_and_file() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/up": {
                "post": {
                    "consumes": ["multipart/form-data"],
                    "parameters": [
                        {"name": "file", "in": "formData", "type": "file", "required": True},
                        {"name": "note", "in": "formData", "type": "string", "x-nullable": True},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    schema = only_tool_schema(doc)
    assert schema["properties"]["file"]["type"] == "string" and schema["required"] == ["file"]
    assert schema["properties"]["note"]["type"] == ["string", "null"]


# -- property: whatever the schema, the result is a valid JSON Schema --------------------------------------

leaf = st.fixed_dictionaries(
    {"type": st.sampled_from(["string", "integer", "number", "boolean"])},
    optional={
        "nullable": st.booleans(),
        "readOnly": st.booleans(),
        "enum": st.just(["a", "b"]),
        "minimum": st.integers(),
    },
)
schemas = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda i: {"type": "array", "items": i}, inner),
        st.builds(
            lambda p: {"type": "object", "properties": p, "required": list(p)[:1]},
            st.dictionaries(st.sampled_from(["a", "b", "c/d", "e~f"]), inner, max_size=3),
        ),
        st.builds(lambda xs: {"oneOf": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"allOf": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$ref": "#/components/schemas/S", "description": "d"}, inner),
    ),
    max_leaves=8,
)


@settings(deadline=None)  # timing varies with machine load; correctness does not
@given(schemas, schemas)
def test_converted_schemas_are_valid_json_schema(schema: dict[str, Any], shared: dict[str, Any]) -> None:
    doc = openapi(body_op({"type": "object", "properties": {"x": schema}}))
    doc["components"] = {"schemas": {"S": shared}}
    result = ingested(doc)
    if not result.tools:  # S is only a reference to itself: reported, never silently dropped
        (issue,) = result.report.skipped
        assert "$ref loop" in issue.reason
        return
    converted = dict(result.tools[0].input_schema)
    Draft202012Validator.check_schema(converted)
    assert converted["type"] == "object" and converted["additionalProperties"] is False
