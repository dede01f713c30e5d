"""Input schemas from Python signatures: JSON Schema out, argument conversion back in."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

import pydantic

from toolbridge.catalog._docstrings import parse_docstring
from toolbridge.errors import ConfigurationError

__all__ = ["FunctionSignature", "inspect_function"]


@dataclass(frozen=True, slots=True)
class FunctionSignature:
    """What toolbridge learned from a Python function."""

    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    model: type[pydantic.BaseModel]
    """Converts validated JSON arguments into the Python values the function takes."""
    result: pydantic.TypeAdapter[Any] | None
    """Turns the function's return value into JSON-compatible data."""


def inspect_function(fn: Callable[..., Any], *, skip: frozenset[str] = frozenset()) -> FunctionSignature:
    """Build the input schema of ``fn`` from its type hints and docstring.

    Every parameter must be annotated; ``*args``/``**kwargs`` are refused because an agent cannot see them.
    """
    qualname = getattr(fn, "__qualname__", repr(fn))
    sig = inspect.signature(fn)
    hints = _hints(fn, qualname)
    doc = parse_docstring(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    for param in sig.parameters.values():
        if param.name in skip:
            continue
        _check_param(param, hints, qualname)
        default = ... if param.default is inspect.Parameter.empty else param.default
        description = doc.params.get(param.name) or None
        fields[param.name] = (hints[param.name], pydantic.Field(default, description=description))
    try:
        model = pydantic.create_model(
            f"{qualname}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
        )
        schema = _closed(_compact(model.model_json_schema()))
        result, output = _result_adapter(hints.get("return", inspect.Signature.empty))
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as exc:
        raise ConfigurationError(
            f"{qualname}: cannot turn its signature into a schema: {str(exc).splitlines()[0]}",
            hint="use JSON-friendly types (str, int, float, bool, lists, dicts, TypedDict, pydantic models)",
        ) from exc
    return FunctionSignature(doc.description, schema, output, model, result)


def _hints(fn: Callable[..., Any], qualname: str) -> dict[str, Any]:
    try:
        return get_type_hints(fn, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ConfigurationError(
            f"cannot read the type hints of {qualname}: {exc}",
            hint="import every type used in the annotations at module level",
        ) from exc


def _check_param(param: inspect.Parameter, hints: Mapping[str, Any], qualname: str) -> None:
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise ConfigurationError(
            f"{qualname}: *args and **kwargs cannot become tool parameters",
            hint="declare each parameter by name with a type hint",
        )
    if param.kind is inspect.Parameter.POSITIONAL_ONLY:
        raise ConfigurationError(
            f"{qualname}: positional-only parameter {param.name!r} cannot be passed by name",
            hint="remove the '/' from the signature",
        )
    if param.name not in hints:
        raise ConfigurationError(
            f"{qualname}: parameter {param.name!r} has no type hint",
            hint=f"annotate it, for example '{param.name}: str'",
        )


def _result_adapter(result_type: Any) -> tuple[pydantic.TypeAdapter[Any] | None, dict[str, Any] | None]:
    if result_type is inspect.Signature.empty:
        return None, None
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(result_type)
    try:
        schema = _compact(adapter.json_schema(mode="serialization"))
    except pydantic.PydanticInvalidForJsonSchema:
        return adapter, None
    return adapter, schema if schema.get("type") == "object" else None


def _closed(node: Any) -> Any:
    """Every object with declared properties refuses others, nested ones too (pydantic marks only the
    top level, and its nested models ignore unknown fields: ``{"bogus": 1}`` inside an item was dropped
    without a word). An object that says what else it takes (``additionalProperties``) keeps that."""
    if isinstance(node, dict):
        closed = {k: _closed(v) for k, v in node.items()}
        if "properties" in closed and "additionalProperties" not in closed and closed.get("type") == "object":
            closed["additionalProperties"] = False
        return closed
    if isinstance(node, list):
        return [_closed(v) for v in node]
    return node


def _compact(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles, which only cost tokens in a tool listing."""
    schema = _strip_titles(schema)
    schema.setdefault("properties", {}) if schema.get("type") == "object" else None
    return schema


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                _strip_titles(v)
                if k not in ("properties", "$defs")
                else {n: _strip_titles(s) for n, s in v.items()}
            )
            for k, v in node.items()
            if k != "title"
        }
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node
