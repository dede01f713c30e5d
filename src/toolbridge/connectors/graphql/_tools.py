"""A schema's root fields as tools: one per ``Query`` and ``Mutation`` field, with its input JSON Schema.

Arguments become the tool's arguments under their own names (GraphQL names are valid tool argument names):
``Int`` an integer in the 32-bit range, ``Float`` a number, ``ID`` a string or an integer, ``String`` and
custom scalars strings, ``Boolean`` a boolean, enums and input objects ``$defs`` referred to by
``#/$defs/Name`` (recursive input types stay finite). A non-null argument without a default is
required; a nullable one also takes ``null`` (in GraphQL an explicit null is a value: "clear this
field"); a schema default is the JSON Schema ``default``. Each tool has one more, optional argument,
``select`` (``select_fields`` when the field has an argument named ``select``): a GraphQL selection
replacing the default one (see :mod:`._selection`).

Queries are read-only and idempotent; mutations are writes, and those named like a deletion
(``delete…``, ``remove…``, ``destroy…``, ``purge…``) destructive. Subscriptions are not tools.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    ast_from_value,
    value_from_ast_untyped,
)

from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.connectors.graphql._selection import default_selection
from toolbridge.connectors.openapi._naming import NameBook, snake

__all__ = ["MAX_DEFAULT_SELECTION", "Operation", "build_tools"]

Kind = Literal["query", "mutation"]
_INT_RANGE = {"minimum": -(2**31), "maximum": 2**31 - 1}
_SCALARS: dict[str, dict[str, Any]] = {
    "Int": {"type": "integer", **_INT_RANGE},
    "Float": {"type": "number"},
    "String": {"type": "string"},
    "Boolean": {"type": "boolean"},
    "ID": {"type": ["string", "integer"]},  # GraphQL's ID input takes both (an agent writes id: 1)
}
_DESTRUCTIVE = re.compile(r"^(delete|remove|destroy|purge)(?![a-z])")
_SELECT_MAX_CHARS = 10_000
MAX_DEFAULT_SELECTION = 8_000
"""Characters of a default selection: past it, the field's default is taken one level less deep."""
_SHOWN_SELECTION = 400


@dataclass(frozen=True, slots=True)
class Operation:
    """How one tool's calls become a GraphQL request."""

    tool: str
    kind: Kind
    field: str
    name: str
    """The operation name (``operationName``): the field's name in PascalCase."""
    variables: tuple[tuple[str, str], ...]
    """Argument → the variable type it is declared with."""
    select_arg: str
    selection: str | None
    """The default selection set, without braces (None for a scalar or enum result)."""

    def document(self, selection: str | None) -> str:
        """The operation's text; arguments travel only as variables."""
        declared = ", ".join(f"${a}: {t}" for a, t in self.variables)
        passed = ", ".join(f"{a}: ${a}" for a, _ in self.variables)
        head = f"{self.kind} {self.name}" + (f"({declared})" if declared else "")
        call = self.field + (f"({passed})" if passed else "")
        return f"{head} {{ {call}" + (f" {{ {selection} }}" if selection else "") + " }"


@dataclass(frozen=True, slots=True)
class Built:
    tools: tuple[Tool, ...]
    operations: dict[str, Operation]


def build_tools(
    connector: str,
    schema: GraphQLSchema,
    *,
    depth: int = 2,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Built:
    """Every root query and mutation field (filtered by ``include``/``exclude`` globs of tool names without
    the connector prefix, e.g. ``repository``, ``create_*``) as a tool and its operation."""
    book = NameBook(connector)
    queries: set[str] = set()
    tools: list[Tool] = []
    operations: dict[str, Operation] = {}
    roots: list[tuple[Kind, Any]] = [("query", schema.query_type), ("mutation", schema.mutation_type)]
    for kind, root in roots:
        for field_name, field in (root.fields if root is not None else {}).items():
            wanted = snake(field_name) or field_name.lower()
            if not _kept(wanted, include, exclude):
                continue
            if kind == "query":
                queries.add(wanted)
            elif wanted in queries:  # a query and a mutation of one name: the mutation says what it is
                wanted += "_mutation"
            name = book.claim(wanted, f"{kind} {field_name}")
            operation = _operation(name, kind, field_name, field, depth)
            operations[name] = operation
            tools.append(_tool(connector, name, kind, field_name, field, operation))
    return Built(tuple(tools), operations)


def _kept(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in exclude)


def _operation(tool: str, kind: Kind, field_name: str, field: GraphQLField, depth: int) -> Operation:
    variables = tuple((a, _variable_type(arg)) for a, arg in field.args.items())
    select_arg = "select_fields" if "select" in field.args else "select"
    name = field_name[0].upper() + field_name[1:]
    selection = default_selection(field, depth)
    while selection is not None and len(selection) > MAX_DEFAULT_SELECTION and depth > 1:
        depth -= 1  # a deep default on a wide schema grows fast (GitHub at depth 5: 270 KB for one field)
        selection = default_selection(field, depth)
    return Operation(tool, kind, field_name, name, variables, select_arg, selection)


def _variable_type(arg: GraphQLArgument) -> str:
    """A non-null argument with a default is declared nullable, so that leaving it out uses the default."""
    kind = arg.type
    if isinstance(kind, GraphQLNonNull) and _has_default(arg):
        return str(kind.of_type)
    return str(kind)


def _has_default(item: GraphQLArgument | GraphQLInputField) -> bool:
    return item.default is not None or item.default_value is not Undefined


def _default(item: GraphQLArgument | GraphQLInputField) -> Any:
    """The schema's default as JSON (graphql-core 3.3 keeps it as a literal or an external value; an
    internal ``default_value`` is turned back into a literal), or Undefined."""
    given = item.default
    if given is not None and given.literal is not None:
        return value_from_ast_untyped(given.literal)
    if given is not None and given.value is not Undefined:
        literal = ast_from_value(given.value, item.type)
    elif item.default_value is not Undefined:
        literal = ast_from_value(item.default_value, item.type)
    else:
        return Undefined
    return Undefined if literal is None else value_from_ast_untyped(literal)


def _tool(connector: str, name: str, kind: Kind, field_name: str, field: GraphQLField, op: Operation) -> Tool:
    schema = _input_schema(field, op)
    destructive = kind == "mutation" and bool(_DESTRUCTIVE.match(field_name))
    annotations = ToolAnnotations(
        read_only=kind == "query", idempotent=kind == "query", destructive=destructive
    )
    return Tool(
        name=name,
        connector=connector,
        description=_description(kind, field_name, field),
        input_schema=schema,
        annotations=annotations,
        title=f"{kind} {field_name}",
    )


def _description(kind: Kind, field_name: str, field: GraphQLField) -> str:
    text = (field.description or "").strip() or f"The GraphQL {kind} field {field_name}."
    if field.deprecation_reason:
        text += f" Deprecated: {field.deprecation_reason}"
    return f"{text} Returns {field.type}."


def _input_schema(field: GraphQLField, op: Operation) -> dict[str, Any]:
    converter = _Converter()
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg_name, arg in field.args.items():
        prop = converter.argument(arg.type, arg.description, _default(arg))
        if arg.deprecation_reason:
            prop["deprecated"] = True
        properties[arg_name] = prop
        if isinstance(arg.type, GraphQLNonNull) and not _has_default(arg):
            required.append(arg_name)
    properties[op.select_arg] = _select_property(field, op)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    if converter.defs:
        schema["$defs"] = converter.defs
    return schema


def _select_property(field: GraphQLField, op: Operation) -> dict[str, Any]:
    if op.selection is None:
        about = f"Not used: the field returns {field.type}, which has no fields to select."
    else:
        shown = (
            op.selection if len(op.selection) <= _SHOWN_SELECTION else op.selection[:_SHOWN_SELECTION] + "…"
        )
        about = (
            f"GraphQL selection of the {field.type} fields to return, e.g. 'id name owner {{ login }}' "
            f"(fields with arguments as in GraphQL: 'items(first: 5) {{ id }}'). Default: {shown}"
        )
    return {"type": "string", "minLength": 1, "maxLength": _SELECT_MAX_CHARS, "description": about}


class _Converter:
    """GraphQL input types → JSON Schema; enums and input objects once each, in ``defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def argument(self, kind: GraphQLInputType, description: str | None, default: Any) -> dict[str, Any]:
        prop = dict(self.of(kind))
        if description:
            note = prop.get("description")
            prop["description"] = description.strip() + (f" ({note})" if note else "")
        if default is not Undefined:
            prop["default"] = default
        return prop

    def of(self, kind: GraphQLInputType) -> dict[str, Any]:
        if isinstance(kind, GraphQLNonNull):
            return self._plain(kind.of_type)
        return _nullable(self._plain(kind))

    def _plain(self, kind: Any) -> dict[str, Any]:
        if isinstance(kind, GraphQLList):
            return {"type": "array", "items": self.of(kind.of_type)}
        if isinstance(kind, GraphQLScalarType):
            return _scalar(kind)
        if kind.name not in self.defs:
            self.defs[kind.name] = {}  # before the fields: a recursive input type refers to itself
            self.defs[kind.name] = (
                self._enum(kind) if isinstance(kind, GraphQLEnumType) else self._input(kind)
            )
        return {"$ref": f"#/$defs/{kind.name}"}

    @staticmethod
    def _enum(kind: GraphQLEnumType) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "enum": list(kind.values)}
        if kind.description:
            schema["description"] = kind.description
        return schema

    def _input(self, kind: GraphQLInputObjectType) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        one_of = bool(getattr(kind, "is_one_of", False))  # @oneOf: exactly one field, and not null
        for name, field in kind.fields.items():
            field_type = (
                field.type.of_type if one_of and isinstance(field.type, GraphQLNonNull) else field.type
            )
            properties[name] = self.argument(
                GraphQLNonNull(field_type) if one_of else field_type, field.description, _default(field)
            )
            if isinstance(field.type, GraphQLNonNull) and not _has_default(field):
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if one_of:
            schema.update(minProperties=1, maxProperties=1)
        if kind.description:
            schema["description"] = kind.description
        return schema


def _scalar(kind: GraphQLScalarType) -> dict[str, Any]:
    known = _SCALARS.get(kind.name)
    if known is not None:
        return dict(known)
    about = f"{kind.name} (a custom scalar, as a string)"
    if kind.description:
        about += f": {kind.description.strip()}"
    return {"type": "string", "description": about[:300]}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" in schema and "$ref" not in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {**schema, "type": [*kinds, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}
