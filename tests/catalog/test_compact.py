"""Compact schemas: what an agent reads of a large tool definition, still valid JSON Schema."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from toolbridge.catalog._compact import ENUM_VALUES, argument_schema, compact_schema, sub_schema


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


def stubs(schema: Any) -> list[str]:
    """The paths the stubs of a compact schema tell the reader to ask for."""
    return re.findall(r"describe it with property='([^']+)'", json.dumps(schema))


def dangling(schema: Any) -> list[str]:
    """The ``$ref`` of a schema that point at nothing inside it."""
    text = json.dumps(schema)
    refs = re.findall(r'"\$ref": "#/([^"]+)"', text)
    return [ref for ref in refs if resolve(schema, ref) is None]


def resolve(schema: Any, pointer: str) -> Any:
    node = schema
    for token in pointer.split("/"):
        node = node.get(token) if isinstance(node, dict) else None
    return node


TREE = {  # what pydantic makes of nested models: $defs, a recursive one among them
    "type": "object",
    "properties": {
        "customer": {"$ref": "#/$defs/Customer", "description": "Who orders."},
        "root": {"$ref": "#/$defs/Node"},
    },
    "$defs": {
        "Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "Customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/Address"}},
        },
        "Node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
            },
        },
    },
}
UNION = {  # OpenAI's 'input': a string, or a list of items of several kinds
    "type": "object",
    "properties": {
        "input": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {"role": {"enum": ["user"]}, "content": MESSAGE},
                            },
                            {"type": "object", "properties": {"role": {"enum": ["tool"]}, "call_id": {}}},
                        ]
                    },
                },
            ]
        }
    },
}


def test_an_argument_comes_with_the_definitions_it_refers_to() -> None:
    """``property='customer'`` answered ``{"$ref": "#/$defs/Customer"}`` without its $defs (found by an
    outside probe, on a Python tool taking TypedDicts)."""
    customer = argument_schema(TREE, "customer")
    assert customer is not None and not dangling(customer)
    jsonschema.Draft202012Validator.check_schema(customer)
    validator = jsonschema.Draft202012Validator(customer)
    assert validator.is_valid({"name": "Ada", "address": {"city": "Paris"}})
    assert not validator.is_valid({"name": "Ada", "address": {}})  # Address's required city
    assert customer["description"] == "Who orders." and "name" in customer["properties"]
    assert argument_schema(TREE, "customer.address.city") == {"type": "string"}
    tree = argument_schema(TREE, "root.children.items.children.items.label")
    assert tree == {"type": "string"}  # a recursive definition, followed as deep as asked
    assert not dangling(argument_schema(TREE, "root.children"))


def test_paths_go_through_lists_and_unions() -> None:
    """``input.items``, the example of the hint and of the docs, answered "no argument"."""
    assert sub_schema(UNION, "input.items") == UNION["properties"]["input"]["anyOf"][1]["items"]  # type: ignore[index]
    assert sub_schema(UNION, "input.1") == UNION["properties"]["input"]["anyOf"][1]  # type: ignore[index]
    assert sub_schema(UNION, "input.1.items.0.content") == MESSAGE  # exact: a branch by its number
    assert sub_schema(UNION, "input.items.content") == MESSAGE  # the one branch that has it
    roles = sub_schema(UNION, "input.items.role")  # both branches have one: either
    assert roles == {"anyOf": [{"enum": ["user"]}, {"enum": ["tool"]}]}
    assert sub_schema(UNION, "input.items.nothing") is None and sub_schema(UNION, "input.2") is None
    dotted = {"type": "object", "properties": {"Parameter1.Name": {"type": "string"}}}
    assert sub_schema(dotted, "Parameter1.Name") == {"type": "string"}  # Twilio's names hold dots


def test_a_big_argument_is_compacted_to_the_budget_with_stubs_that_lead_on() -> None:
    """An argument's answer ignored the budget (OpenAI's 'input': 56,546 bytes, no stubs)."""
    kinds = [{**MESSAGE, "properties": {**MESSAGE["properties"], "n": {"const": i}}} for i in range(30)]
    wide = {"type": "array", "items": {"anyOf": kinds}}
    schema = {"type": "object", "properties": {"input": {"anyOf": [{"type": "string"}, wide]}}}
    assert size(schema) > 40_000
    part = argument_schema(schema, "input")
    assert part is not None
    compact, changed = compact_schema(part, budget=4_000, path="input")
    assert changed and size(compact) <= 4_000 and not dangling(compact)
    assert compact["anyOf"][0] == {"type": "string"}  # shallow parts first
    followed, pending = 0, stubs(compact)
    while pending:  # every stub, followed literally, answers within the budget, and so do theirs
        path = pending.pop()
        found = argument_schema(schema, path)
        assert found is not None, path
        answer, _ = compact_schema(found, budget=4_000, path=path)
        assert size(answer) <= 4_000 and not dangling(answer), path
        pending += stubs(answer)
        followed += 1
    assert followed >= 30
    items = argument_schema(schema, "input.1.items")
    assert items is not None
    few, _ = compact_schema(items, budget=2_000, path="input.1.items")  # 30 stubs do not fit
    note = few["x-compact"]
    assert size(few) <= 2_000 and re.fullmatch(r"\d+ more branches left out \('\d+' … '29'\): .*", note)
    assert note.endswith("describe one with property='input.1.items.<number>'")


def test_hundreds_of_small_arguments_fit_too() -> None:
    """Twilio's create_siprec has 205 arguments (Parameter1.Name … Parameter99.Value): 14 KB."""
    props = {
        f"Parameter{i}.{part}": {"type": "string", "description": f"Parameter {part.lower()}"}
        for i in range(1, 100)
        for part in ("Name", "Value")
    }
    schema = {
        "type": "object",
        "properties": {"CallSid": {"type": "string"}, **props},
        "required": ["CallSid"],
    }
    compact, changed = compact_schema(schema, budget=4_000)
    assert changed and size(compact) <= 4_000 and "CallSid" in compact["properties"]
    assert re.fullmatch(
        r"\d+ more properties left out \('Parameter\d+\.\w+' … 'Parameter99.Value'\): describe one with "
        r"property='<name>'",
        compact["x-compact"],
    )
