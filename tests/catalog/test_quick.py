"""The compiled argument check (catalog/_quick.py) says "valid" only when jsonschema agrees.

Its one promise: when it answers True, the schema's jsonschema validator finds no error. Checked on
hand-written schemas that use every keyword it compiles, with arbitrary JSON (hypothesis), and on the
input schemas of real vendor documents with arguments generated from each schema and then mutated.
"""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests._specs import vendor_spec

from toolbridge import Principal
from toolbridge.catalog import Catalog, Tool
from toolbridge.catalog._quick import DRAFT_7, compile_check
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.errors import InvalidArguments

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
FORMATS = dict.fromkeys(CHECKER.checkers, CHECKER.conforms)

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 10},
            "name": {"type": "string", "minLength": 2, "maxLength": 4, "pattern": "^[a-c]"},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "flag": {"type": ["boolean", "null"]},
            "n": {"enum": [1, True, None, "x", 2.5]},
            "c": {"const": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
            "set": {"type": "array", "uniqueItems": True},
            "when": {"type": "string", "format": "date"},
            "size": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1.5},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]},
            "both": {"allOf": [{"minimum": 0}, {"maximum": 3}]},
            "nested": {
                "type": "object",
                "properties": {"x": {"type": "integer"}},
                "additionalProperties": {"type": "string"},
                "minProperties": 1,
                "maxProperties": 2,
            },
            "ref": {"$ref": "#/$defs/thing"},
            "never": False,
        },
        "required": ["id"],
        "additionalProperties": False,
        "$defs": {"thing": {"type": "integer"}},
    },
    {"type": "object", "properties": {"a": {"type": "string", "format": "int64"}}},  # an annotation only
    {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},  # not compiled: never sure
    {"type": "array", "items": {"type": "object", "required": ["a"]}},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 12)
    | st.floats(-2, 12)
    | st.sampled_from(["", "a", "b", "abc"])
    | st.sampled_from(["2026-12-03", "x", "bcd", "abcde", "0"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*SCHEMAS[0]["properties"], "zz", "x", "a", "b"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


def _agrees(schema: dict[str, Any], instance: Any) -> bool:
    quick = compile_check(schema, FORMATS)
    assert quick is not None
    valid = jsonschema.Draft202012Validator(schema, format_checker=CHECKER).is_valid(instance)
    return valid or not quick(instance)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SCHEMAS), json_values)
def test_never_accepts_what_jsonschema_refuses(schema: dict[str, Any], instance: Any) -> None:
    assert _agrees(schema, instance)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_never_accepts_arguments_the_first_schema_refuses(fields: Any) -> None:
    instance = {"id": 3, **fields} if isinstance(fields, dict) else fields
    assert _agrees(SCHEMAS[0], instance)


def test_sure_of_typical_valid_arguments() -> None:
    quick = compile_check(SCHEMAS[0], FORMATS)
    assert quick is not None
    assert quick({"id": 3, "name": "abc", "kind": "a", "tags": ["x"], "when": "2026-12-03", "size": 1})
    assert quick({"id": 1, "flag": None, "n": True, "c": 0.0, "either": "z", "nested": {"x": 1, "y": "s"}})
    assert not quick({"id": 1, "n": 1.0 + 1})  # 2 is not in the enum: jsonschema must be asked
    assert not quick({"id": 1, "ref": 1})  # $ref is not compiled: never sure
    assert not quick({"id": 1, "when": "2026-13-45"})


def test_another_draft_is_left_to_jsonschema() -> None:
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object"}
    assert compile_check(schema, FORMATS) is None


def _generate(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value meant to fit ``schema``, wrong now and then (a mutation, a stray field, a bound crossed)."""
    junk = [None, True, 0, -1, 1.5, "", "x" * 300, [], {}, "2026-12-03", "not a date"]
    if not isinstance(schema, dict) or rng.random() < 0.05 or depth > 6:
        return rng.choice(junk)
    for combined in ("anyOf", "allOf", "oneOf"):
        if schema.get(combined):
            return _generate(rng.choice(schema[combined]), rng, depth + 1)
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    kind = rng.choice(kind) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        out = {
            k: _generate(v, rng, depth + 1)
            for k, v in props.items()
            if k in schema.get("required", []) or rng.random() < 0.3
        }
        if rng.random() < 0.05:
            out["stray"] = 1
        return out
    if kind == "array":
        return [_generate(schema.get("items", {}), rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 1000)
        return rng.randint(int(low) - 1, int(high) + 1)
    if kind == "number":
        return rng.uniform(schema.get("minimum", -5), schema.get("maximum", 1000))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "string":
        if schema.get("format") == "date-time":
            return "2026-12-03T04:05:06Z"
        if schema.get("format") == "date":
            return "2026-12-03"
        longest = schema.get("maxLength", 12)
        length = rng.choice([0, 1, 3, longest, longest + 1])
        return "".join(rng.choice("abcAB01-_") for _ in range(min(length, 20))) + "a" * max(0, length - 20)
    return rng.choice(junk)


@pytest.mark.parametrize("document", ["pagerduty-rest.json", "twilio-api-v2010.json", "openai.yaml"])
def test_vendor_schemas_agree_with_jsonschema(document: str) -> None:
    connector = OpenAPIConnector.from_spec("v", vendor_spec(document))
    rng = random.Random(17)
    sure = unsure = 0
    for tool in connector.tools():
        schema = dict(tool.input_schema)
        quick = compile_check(schema, FORMATS)
        assert quick is not None
        validator = jsonschema.Draft202012Validator(schema, format_checker=CHECKER)
        for _ in range(20):
            instance = _generate(schema, rng)
            if quick(instance):
                assert validator.is_valid(instance), (tool.name, instance)
                sure += 1
            elif validator.is_valid(instance):
                unsure += 1
    assert sure > 5 * unsure  # mostly sure of what is valid: the fast path is the common one


def test_catalog_still_words_every_error() -> None:
    catalog = Catalog(semantic=False)
    tool = Tool(name="t.get", description="d", input_schema=SCHEMAS[0], connector="t")
    catalog.add(tool)
    catalog.validate(tool, {"id": 2}, size=10, max_bytes=100)
    with pytest.raises(InvalidArguments) as caught:
        catalog.validate(tool, {"id": 0, "nmae": "ab"}, size=10, max_bytes=100)
    fields = {e["field"] for e in caught.value.errors}
    assert fields == {"id", "(arguments)"}
    assert "did you mean 'name'" in caught.value.message
    assert Principal.local().can_see(tool)


def test_a_malformed_schema_is_left_to_jsonschema() -> None:
    quick = compile_check(
        {"type": "object", "required": [["a"]], "properties": {"a": {"minLength": "2"}}}, FORMATS
    )
    assert quick is not None
    assert not quick({"a": "x"})


CHECKER_7 = jsonschema.Draft7Validator.FORMAT_CHECKER
FORMATS_7 = dict.fromkeys(CHECKER_7.checkers, CHECKER_7.conforms)
SCHEMAS_7 = [
    *({**schema, "$schema": DRAFT_7[0]} for schema in SCHEMAS),
    {"$schema": DRAFT_7[1], "type": "array", "items": [{"type": "integer"}], "additionalItems": False},
    {
        "$schema": DRAFT_7[0],
        "properties": {"a": {"$ref": "#/definitions/a", "type": "integer"}},
        "definitions": {"a": {"type": "string"}},
    },
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SCHEMAS_7), json_values)
def test_draft_07_never_accepts_what_jsonschema_refuses(schema: dict[str, Any], instance: Any) -> None:
    """Draft-07 schemas (the TypeScript SDK's servers declare them) are checked as draft-07 reads them:
    its tuple-form ``items`` and its ``$ref`` that hides its siblings are never sure."""
    quick = compile_check(schema, FORMATS_7, DRAFT_7)
    assert quick is not None
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator
    assert jsonschema.Draft7Validator(schema, format_checker=CHECKER_7).is_valid(instance) or not quick(
        instance
    )


def test_a_draft_07_tool_takes_the_compiled_check() -> None:
    schema = {
        "$schema": DRAFT_7[0],
        "type": "object",
        "properties": {"message": {"type": "string"}},
        "required": ["message"],
    }
    assert compile_check(schema, FORMATS_7, DRAFT_7)({"message": "hi"})
    assert compile_check(schema, FORMATS) is None  # not read as 2020-12
    catalog = Catalog(semantic=False)
    tool = Tool(name="t.echo", description="d", input_schema=schema, connector="t")
    catalog.add(tool)
    catalog.validate(tool, {"message": "hi"}, size=10, max_bytes=100)
    with pytest.raises(InvalidArguments) as caught:
        catalog.validate(tool, {"message": 1}, size=10, max_bytes=100)
    assert {e["field"] for e in caught.value.errors} == {"message"}
