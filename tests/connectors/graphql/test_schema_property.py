"""Property: every argument value GraphQL accepts, the tool's input schema accepts too (and so the hub
never refuses a call the API would take), for arguments of every shape of input type."""

from __future__ import annotations

from typing import Any

import jsonschema
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    coerce_input_value,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from toolbridge.connectors.graphql import GraphQLConnector, parse_schema

SDL = """
enum Color { RED GREEN }
input Leaf { n: Int!, tags: [String!], color: Color = RED }
input Tree { label: String, leaves: [Leaf]!, children: [Tree!], weight: Float }
input Pick @oneOf { byId: ID, byName: String }
type Query {
  grow(tree: Tree!, depth: Int = 3, ids: [ID!], maybe: [[Boolean]], pick: Pick, when: Stamp): Int
}
scalar Stamp
"""
SCHEMA = parse_schema(SDL, "property")
(TOOL,) = GraphQLConnector("t", "https://t.test/graphql", SCHEMA).tools()
VALIDATOR = jsonschema.Draft202012Validator(TOOL.input_schema)
FIELD = SCHEMA.query_type.fields["grow"] if SCHEMA.query_type else None
_SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "Int": st.integers(-(2**31), 2**31 - 1),
    "Float": st.floats(allow_nan=False, allow_infinity=False),
    "String": st.text(max_size=8),
    "Boolean": st.booleans(),
    "ID": st.text(max_size=8) | st.integers(min_value=-(2**31), max_value=2**31 - 1),
    "Stamp": st.text(max_size=8),
}


def values(kind: GraphQLInputType, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values GraphQL accepts for ``kind`` (lists as lists, nullable ones sometimes null)."""
    if isinstance(kind, GraphQLNonNull):
        return _plain(kind.of_type, depth)
    return st.one_of(st.none(), _plain(kind, depth))


def _plain(kind: Any, depth: int) -> st.SearchStrategy[Any]:
    if isinstance(kind, GraphQLList):
        return st.lists(values(kind.of_type, depth + 1), max_size=0 if depth > 2 else 3)
    if isinstance(kind, GraphQLScalarType):
        return _SCALARS[kind.name]
    if isinstance(kind, GraphQLEnumType):
        return st.sampled_from(list(kind.values))
    assert isinstance(kind, GraphQLInputObjectType)
    if kind.is_one_of:
        return st.one_of(*(st.fixed_dictionaries({n: _plain(f.type, depth)}) for n, f in kind.fields.items()))
    fields = kind.fields.items()
    required = {n: values(f.type, depth + 1) for n, f in fields if isinstance(f.type, GraphQLNonNull)}
    if depth > 2:  # keep recursive input types finite: only what is required, the rest null
        optional = {n: st.none() for n, _ in fields if n not in required}
    else:
        optional = {n: values(f.type, depth + 1) for n, f in fields if n not in required}
    return st.fixed_dictionaries(required, optional=optional)


@st.composite
def arguments(draw: st.DrawFn) -> dict[str, Any]:
    assert FIELD is not None
    chosen: dict[str, Any] = {}
    for name, arg in FIELD.args.items():
        if isinstance(arg.type, GraphQLNonNull) or draw(st.booleans()):
            chosen[name] = draw(values(arg.type))
    return chosen


@settings(deadline=None, max_examples=150)  # timing varies with machine load; correctness does not
@given(arguments())
def test_what_graphql_accepts_the_input_schema_accepts(args: dict[str, Any]) -> None:
    assert FIELD is not None
    for name, value in args.items():
        coerce_input_value(value, FIELD.args[name].type)  # raises if GraphQL would refuse it
    errors = [e.message for e in VALIDATOR.iter_errors(args)]
    assert errors == [], (args, errors)


def test_what_graphql_refuses_the_input_schema_refuses() -> None:
    for wrong in (
        {},  # tree is required
        {"tree": {"leaves": [{"n": 2**31}]}},  # out of Int's range
        {"tree": {"leaves": [{"n": 1, "color": "BLUE"}]}},  # no such enum value
        {"tree": {"leaves": None}},  # non-null field set to null
        {"tree": {"leaves": []}, "pick": {"byId": "1", "byName": "a"}},  # @oneOf: two fields
        {"tree": {"leaves": []}, "ids": [None]},  # [ID!] holds no null
    ):
        assert list(VALIDATOR.iter_errors(wrong)), wrong
