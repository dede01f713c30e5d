"""What a call asks the upstream for: a default selection set per field, or the agent's own ``select``.

The default (:func:`default_selection`) holds every scalar and enum field of the returned type, and the
fields of nested object types down to ``depth`` levels. Object fields that take arguments are left out at
every level (on most APIs they are paginated connections that need ``first``/``last``, or lookups that
need an id); so is a nested object with nothing left to select. An interface gets ``__typename`` and its
own fields; a union ``__typename`` and an inline fragment of each member's scalar fields (members past
:data:`MAX_UNION_MEMBERS`: ``__typename`` only tells them apart). A type with nothing selectable at all
gets ``__typename``, so the document is always valid. A default longer than
:data:`~toolbridge.connectors.graphql._tools.MAX_DEFAULT_SELECTION` characters is taken one level less deep
(down to the type's own fields).

An agent that wants other fields writes a selection (``id name owner { login } issues(first: 5) { nodes
{ title } }``): :func:`operation_document` puts it in the operation and graphql-core validates the whole
document against the schema before anything is sent (:class:`~toolbridge.errors.InvalidArguments` with
graphql-core's messages otherwise).
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    get_named_type,
    is_leaf_type,
    is_required_argument,
    parse,
    validate,
)

from toolbridge.errors import InvalidArguments

__all__ = ["MAX_UNION_MEMBERS", "check_document", "default_selection"]

MAX_UNION_MEMBERS = 25
_Composite = GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType


def default_selection(field: GraphQLField, depth: int) -> str | None:
    """The selection set (without braces) for ``field``'s type; None for a scalar or enum result."""
    named = get_named_type(field.type)
    if is_leaf_type(named):
        return None
    assert isinstance(named, _Composite)
    return _select(named, max(depth, 1)) or "__typename"


def _select(named: _Composite, depth: int) -> str:
    if isinstance(named, GraphQLUnionType):
        parts = ["__typename"]
        for member in named.types[:MAX_UNION_MEMBERS]:
            leaves = _fields(member, 1)
            if leaves:
                parts.append(f"... on {member.name} {{ {leaves} }}")
        return " ".join(parts)
    own = _fields(named, depth)
    return f"__typename {own}".rstrip() if isinstance(named, GraphQLInterfaceType) else own


def _fields(named: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> str:
    parts: list[str] = []
    for name, field in named.fields.items():
        inner = get_named_type(field.type)
        if is_leaf_type(inner):
            if not _needs_arguments(field):
                parts.append(name)
        elif depth > 1 and not field.args and isinstance(inner, _Composite):
            nested = _select(inner, depth - 1) if not isinstance(inner, GraphQLUnionType) else ""
            if nested and nested != "__typename":
                parts.append(f"{name} {{ {nested} }}")
    return " ".join(parts)


def _needs_arguments(field: GraphQLField) -> bool:
    return any(is_required_argument(arg) for arg in field.args.values())


def check_document(schema: GraphQLSchema, text: str, *, select: str | None, tool: str) -> DocumentNode:
    """``text`` parsed and validated against ``schema`` (a bad ``select`` is the caller's to fix)."""
    try:
        document = parse(text, no_location=False)
    except GraphQLError as exc:
        raise _refused(tool, select, [exc.message]) from None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(document.definitions) != 1 or len(operations) != 1:
        raise _refused(tool, select, ["the selection must be fields only, not another operation or fragment"])
    errors = validate(schema, document)
    if errors:
        raise _refused(tool, select, [e.message for e in errors[:5]])
    return document


def _refused(tool: str, select: str | None, messages: list[str]) -> InvalidArguments:
    detail = "; ".join(messages)
    errors = [{"field": "select", "error": m} for m in messages]
    if select is None:  # the connector's own document: a toolbridge bug, told as such
        return InvalidArguments(
            f"{tool!r}: the operation is not valid for the schema: {detail}", errors=errors, tool=tool
        )
    return InvalidArguments(
        f"{tool!r}: 'select' is not a valid selection for this field: {detail}",
        errors=errors,
        tool=tool,
        hint="write fields of the returned type, e.g. 'id name owner { login }'; "
        "use describe_tool for the type's fields, or leave 'select' out for the default fields",
    )
