"""Compact schemas: what an agent reads of a large tool definition, still valid JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from toolbridge.catalog._compact import ENUM_VALUES, compact_schema, sub_schema


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


MESSAGE = {
    "type": "object",
    "description": "A message in the conversation. " * 20,
    "properties": {
        "role": {"type": "string", "enum": [f"role{i}" for i in range(60)], "description": "Who speaks."},
        "content": {"type": "string", "description": "What is said. " * 30},
        "description": {"type": "string", "description": "a property called 'description'"},
    },
    "required": ["role"],
}
BIG = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "description": "The model."},
        "input": {"type": "array", "items": {"anyOf": [MESSAGE, {"type": "string"}]}},
        "instructions": MESSAGE,
        "history": {"type": "array", "items": MESSAGE},
        "huge": {
            "type": "object",
            "description": "Lots of settings.",
            "properties": {
                f"setting{i}": {"type": "string", "description": f"Setting {i}. " * 40} for i in range(100)
            },
        },
    },
    "required": ["model", "input"],
}


def test_small_schemas_are_left_alone() -> None:
    small = {"type": "object", "properties": {"a": {"type": "integer", "description": "A."}}}
    assert compact_schema(small, budget=1000) == (small, False)


def test_big_schemas_shrink_and_stay_valid() -> None:
    compact, changed = compact_schema(BIG, budget=2_000)
    assert changed and size(compact) < size(BIG) / 4
    jsonschema.Draft202012Validator.check_schema(compact)
    assert "$defs" in compact  # the message schema, repeated three times, is stored once
    refs = json.dumps(compact).count('"$ref": "#/$defs/')
    assert refs >= 2
    [message] = [d for d in compact["$defs"].values() if "role" in d.get("properties", {})]
    assert message["properties"]["description"]["type"] == "string"  # a property named 'description' stays
    [role] = [d for d in compact["$defs"].values() if "enum" in d]  # shared inside the shared message
    assert len(role["enum"]) == ENUM_VALUES and role["x-enum-count"] == 60
    assert compact["properties"]["huge"]["x-compact"].endswith("describe it with property='huge'")
    assert compact["required"] == ["model", "input"]


def test_one_argument_by_path() -> None:
    assert sub_schema(BIG, "huge.setting3") == BIG["properties"]["huge"]["properties"]["setting3"]  # type: ignore[index]
    assert sub_schema(BIG, "nothing") is None and sub_schema(BIG, "model.x") is None
    part, changed = compact_schema(BIG["properties"]["huge"], budget=3_000, path="huge")  # type: ignore[index]
    assert changed and size(part) <= size(BIG["properties"]["huge"])  # type: ignore[index]
