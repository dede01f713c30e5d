"""Parameters (Swagger 2.0 and OpenAPI 3) → :class:`Parameter`s, fixed values and argument schemas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from toolbridge.connectors.openapi._model import FixedValue, Location, Parameter, Shape
from toolbridge.connectors.openapi._refs import Located, pointer_of
from toolbridge.connectors.openapi._schema import Converted, SchemaConverter, brief

__all__ = ["ArgSpec", "ParamInput", "read_parameter", "shape_of"]

_LOCATIONS = ("path", "query", "header", "cookie")
_HANDLED_HEADERS = {"accept", "content-type", "authorization"}
_COLLECTION = {
    "csv": ("form", False),
    "ssv": ("spaceDelimited", False),
    "pipes": ("pipeDelimited", False),
    "multi": ("form", True),
    "tsv": ("tabDelimited", False),
}


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument of the tool: its JSON Schema, whether required, and the ``$defs`` it needs."""

    schema: dict[str, Any]
    required: bool
    converted: Converted


@dataclass(frozen=True, slots=True)
class ParamInput:
    """A parameter as read: either asked of the agent (``parameter`` + ``arg``) or ``fixed``."""

    parameter: Parameter | None = None
    arg: ArgSpec | None = None
    fixed: FixedValue | None = None
    accept: str | None = None


def shape_of(schema: Mapping[str, Any]) -> Shape:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "array" in kinds or (kind is None and "items" in schema):
        return "array"
    if "object" in kinds or (kind is None and "properties" in schema):
        return "object"
    return "primitive"


def read_parameter(
    located: Located, converter: SchemaConverter, *, swagger: bool, chars: int
) -> ParamInput | None:
    """Read one (dereferenced) parameter object; None for ``body``/``formData`` (read elsewhere)."""
    node: Mapping[str, Any] = located.node
    name, where = str(node.get("name", "")), node.get("in")
    if where not in _LOCATIONS or not name:
        return None
    location = cast(Location, where)
    if location == "header" and name.lower() in _HANDLED_HEADERS:
        return _handled_header(node, name, swagger)
    converted, content_type = _param_schema(located, converter, swagger)
    required = bool(node.get("required")) or location == "path"
    fixed = _fixed_value(node, converted.schema, name, location, required)
    if fixed is not None:
        return ParamInput(fixed=fixed)
    schema = dict(converted.schema)
    description = brief(node.get("description"), chars)
    if description:
        schema["description"] = description
    style, explode = _style(node, location, swagger)
    parameter = Parameter(
        name=name,
        location=location,
        arg=name,
        required=required,
        style=style,
        explode=explode,
        shape=shape_of(schema) if content_type is None else "primitive",
        allow_reserved=bool(node.get("allowReserved")),
        content_type=content_type,
    )
    return ParamInput(parameter=parameter, arg=ArgSpec(schema, required, converted))


def _param_schema(
    located: Located, converter: SchemaConverter, swagger: bool
) -> tuple[Converted, str | None]:
    node: Mapping[str, Any] = located.node
    if swagger:
        return converter.convert(located), None
    if isinstance(node.get("schema"), dict | bool):
        return converter.convert(_sub(located, "schema")), None
    content = node.get("content")
    if isinstance(content, dict) and content:
        media = next(iter(content))
        entry = _sub(_sub(located, "content"), media)
        if isinstance(entry.node, dict) and "schema" in entry.node:
            return converter.convert(_sub(entry, "schema")), str(media)
        return Converted({}, {}), str(media)
    return Converted({"type": "string"}, {}), None


def _fixed_value(
    node: Mapping[str, Any], schema: Mapping[str, Any], name: str, location: Location, required: bool
) -> FixedValue | None:
    """Constant parameters (one-value enums, ``const``) and required headers with a default."""
    if not required:
        return None
    values = (
        [v for v in schema.get("enum", ()) if v is not None] if isinstance(schema.get("enum"), list) else []
    )
    if len(values) == 1 and location != "path":
        return FixedValue(name, location, _text(values[0]))
    if "const" in schema and location != "path":
        return FixedValue(name, location, _text(schema["const"]))
    if location == "header" and "default" in schema:
        return FixedValue(name, location, _text(schema["default"]))
    return None


def _handled_header(node: Mapping[str, Any], name: str, swagger: bool) -> ParamInput:
    """Accept, Content-Type and Authorization are toolbridge's to set (OpenAPI: such parameters are ignored).

    A declared constant is still honoured: some documents require e.g. ``Content-Type`` even on a GET.
    """
    value = _constant(node, swagger)
    if name.lower() == "accept":
        return ParamInput(accept=value)
    if name.lower() == "content-type" and (value or node.get("required")):
        return ParamInput(fixed=FixedValue("Content-Type", "header", value or "application/json"))
    return ParamInput()


def _constant(node: Mapping[str, Any], swagger: bool) -> str | None:
    schema = node if swagger else node.get("schema")
    if not isinstance(schema, dict):
        return None
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return _text(enum[0])
    return _text(schema["default"]) if "default" in schema else None


def _style(node: Mapping[str, Any], location: Location, swagger: bool) -> tuple[str, bool]:
    if swagger:
        style, explode = _COLLECTION.get(str(node.get("collectionFormat", "csv")), ("form", False))
        if location in ("path", "header") and style == "form":
            style = "simple"
        return style, explode
    default = "form" if location in ("query", "cookie") else "simple"
    style = str(node.get("style", default))
    flag = node.get("explode")
    return style, flag if isinstance(flag, bool) else style == "form"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sub(located: Located, key: str) -> Located:
    return Located(located.node[key], located.uri, located.pointer + pointer_of(key))
