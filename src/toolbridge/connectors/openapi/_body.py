"""Request bodies → a :class:`Body` and its arguments (object bodies are spread into named arguments)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolbridge.connectors.openapi._model import Body, BodyField, BodyKind
from toolbridge.connectors.openapi._naming import arg_name
from toolbridge.connectors.openapi._params import ArgSpec
from toolbridge.connectors.openapi._refs import Located, pointer_of
from toolbridge.connectors.openapi._schema import Converted, SchemaConverter, brief

__all__ = ["BodyInput", "choose_media_type", "form_body", "media_kind", "schema_body", "unique_arg"]

BINARY_HINT = "file content: text as is, or bytes as base64 prefixed with 'base64:'"
_RAW = frozenset({"binary", "8bit", "7bit"})
_BASE64 = frozenset({"base64", "base64url"})
_PREFERENCE = ("json", "x-www-form-urlencoded", "multipart/form-data", "text/", "")


@dataclass(frozen=True, slots=True)
class BodyInput:
    body: Body
    args: dict[str, ArgSpec] = field(default_factory=dict)


def choose_media_type(media_types: Iterable[str]) -> str | None:
    """The media type toolbridge sends: JSON first, then forms, then text, then anything."""
    candidates = [m for m in media_types if isinstance(m, str)]
    for wanted in _PREFERENCE:
        for media in candidates:
            if wanted in media.lower():
                return media
    return None


def media_kind(media_type: str) -> BodyKind:
    media = media_type.lower().split(";")[0].strip()
    if "json" in media or media in ("*/*", ""):
        return "json"
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media.startswith("multipart/"):
        return "multipart"
    if media.startswith("text/") or media.endswith("xml"):
        return "text"
    return "binary"


def unique_arg(wanted: str, taken: set[str], prefix: str = "body_") -> str:
    name = arg_name(wanted)
    if name in taken:
        name = arg_name(prefix + wanted)
    n = 2
    base = name
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def schema_body(
    media_type: str,
    located: Located | None,
    *,
    required: bool,
    converter: SchemaConverter,
    taken: set[str],
    encoding: Mapping[str, Any] | None = None,
    description: str = "",
) -> BodyInput:
    """A body described by one schema (OpenAPI 3 ``requestBody`` or a Swagger ``in: body`` parameter)."""
    kind = media_kind(media_type)
    converted = converter.convert(located) if located is not None else Converted({}, {})
    is_file, text_encoding = file_form(converted.schema)
    if kind == "json" and media_type.split(";")[0].strip() in ("*/*", "") and is_file:
        kind, media_type = "binary", "application/octet-stream"  # a file: its bytes, not a JSON string
    elif kind == "json" and "*" in media_type.split(";")[0]:
        media_type = "application/json"  # a range is no Content-Type (Kubernetes' writes consume "*/*")
    if kind == "text":
        schema = {"type": "string", "description": description} if description else {"type": "string"}
        return _whole(media_type, kind, required, schema, converted, taken)
    if kind == "binary":
        hint = f"{description} ({BINARY_HINT})" if description else BINARY_HINT
        schema = {"type": "string", "description": hint}
        return _whole(media_type, kind, required, schema, converted, taken, text_encoding)
    if _spreadable(converted.schema):
        return _spread(media_type, kind, required, converted, taken, encoding or {})
    schema = dict(converted.schema)
    if description and "description" not in schema:
        schema["description"] = description
    return _whole(media_type, kind, required, schema, converted, taken)


def form_body(
    params: Sequence[Located],
    consumes: Sequence[str],
    *,
    converter: SchemaConverter,
    taken: set[str],
    chars: int,
) -> BodyInput:
    """Swagger 2.0 ``in: formData`` parameters: multipart when a file is sent or declared, else a form."""
    has_file = any(p.node.get("type") == "file" for p in params)
    multipart = has_file or any("multipart/form-data" in c for c in consumes)
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    fields: list[BodyField] = []
    args: dict[str, ArgSpec] = {}
    for param in params:
        name = str(param.node.get("name", ""))
        arg = unique_arg(name, taken)
        converted = converter.convert(param)
        schema = dict(converted.schema)
        binary = param.node.get("type") == "file"
        text = BINARY_HINT if binary else brief(param.node.get("description"), chars)
        if text:
            schema["description"] = text
        fields.append(BodyField(name, arg, binary))
        args[arg] = ArgSpec(schema, bool(param.node.get("required")), converted)
    required = any(a.required for a in args.values())
    kind: BodyKind = "multipart" if multipart else "form"
    return BodyInput(Body(media, kind, required, fields=tuple(fields)), args)


_WHOLE_OBJECT = (
    "patternProperties",
    "propertyNames",
    "if",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
)
"""Keywords about the body's members as a whole: a body with them stays one argument (spread into
arguments, they would be lost)."""


def _spreadable(schema: Mapping[str, Any]) -> bool:
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return False
    if any(k in schema for k in ("anyOf", "allOf", "oneOf", "not", "$ref", *_WHOLE_OBJECT)):
        return False
    return schema.get("additionalProperties", False) is False


def _spread(
    media_type: str,
    kind: BodyKind,
    required: bool,
    converted: Converted,
    taken: set[str],
    encoding: Mapping[str, Any],
) -> BodyInput:
    schema = converted.schema
    needed = set(schema.get("required", []))  # the schema's own list, whether or not the body is required
    fields: list[BodyField] = []
    args: dict[str, ArgSpec] = {}
    described: dict[str, Any] = schema["properties"]
    # a member required but not described (Figma's webhook `team_id`) takes any value, as JSON Schema says
    undescribed = [n for n in schema.get("required", []) if isinstance(n, str) and n not in described]
    for name, prop in {**described, **{key: {} for key in undescribed}}.items():
        arg = unique_arg(name, taken)
        binary, text_encoding = _file_field(kind, prop)
        content_type = _encoding_type(encoding, name) or _part_type(kind, prop)
        style, explode = _encoding_style(encoding, name) if kind == "form" else (None, None)
        fields.append(BodyField(name, arg, binary, content_type, text_encoding, style, explode))
        shown = _file_argument(prop) if binary else prop
        args[arg] = ArgSpec(shown, name in needed, converted)
    return BodyInput(Body(media_type, kind, required, fields=tuple(fields)), args)


def _whole(
    media_type: str,
    kind: BodyKind,
    required: bool,
    schema: dict[str, Any],
    converted: Converted,
    taken: set[str],
    encoding: str | None = None,
) -> BodyInput:
    arg = unique_arg("body", taken, prefix="request_")
    needed = required or bool(schema.get("required"))  # members it requires cannot be sent without it
    body = Body(media_type, kind, required, arg=arg, encoding=encoding)
    return BodyInput(body, {arg: ArgSpec(schema, needed, converted)})


def file_form(schema: Any) -> tuple[bool, str | None]:
    """Whether a schema describes a file, and the text its bytes travel as (None: raw).

    OpenAPI 3.0 says ``format: binary``; 3.1 ("Considerations for File Uploads") uses JSON Schema's
    keywords: ``contentMediaType`` without ``contentEncoding`` is raw bytes, ``contentEncoding: base64``
    (or ``base64url``) the bytes as that text; ``binary``, ``8bit`` and ``7bit`` (RFC 2045, which
    ``contentEncoding`` names) are raw bytes too (Discord's document says ``binary``)."""
    if not isinstance(schema, dict) or ("type" in schema and "string" not in _types(schema)):
        return False, None
    coding = schema.get("contentEncoding")
    coding = coding.lower() if isinstance(coding, str) else None
    if coding in _BASE64:
        return True, coding
    if coding in _RAW or schema.get("format") == "binary":
        return True, None
    return coding is None and isinstance(schema.get("contentMediaType"), str), None


def _file_field(kind: BodyKind, prop: Any) -> tuple[bool, str | None]:
    """A property sent as a file part: ``format: binary`` in any body, the 3.1 forms in multipart ones (in
    a JSON body, a ``contentEncoding: base64`` string is the agent's base64 text, sent as it is)."""
    is_file, text_encoding = file_form(prop)
    if kind == "multipart":
        return is_file, text_encoding
    return isinstance(prop, dict) and prop.get("format") == "binary", None


def _file_argument(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A file argument as the agent gives it (text, or ``base64:`` and the bytes), whatever the wire says."""
    shown = {k: v for k, v in prop.items() if k != "contentEncoding"}
    return {**shown, "description": BINARY_HINT}


def _encoding_style(encoding: Mapping[str, Any], name: str) -> tuple[str | None, bool | None]:
    """A form field's ``style`` and ``explode`` from its Encoding Object (Stripe: ``deepObject``)."""
    entry = encoding.get(name)
    if not isinstance(entry, dict):
        return None, None
    style, explode = entry.get("style"), entry.get("explode")
    return (style if isinstance(style, str) else None), (explode if isinstance(explode, bool) else None)


def _encoding_type(encoding: Mapping[str, Any], name: str) -> str | None:
    entry = encoding.get(name)
    value = entry.get("contentType") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def _part_type(kind: BodyKind, schema: Any) -> str | None:
    """OpenAPI's default for a multipart part: objects and arrays of objects are JSON (3.1 §4.8.15)."""
    if kind != "multipart" or not isinstance(schema, dict):
        return None
    media = schema.get("contentMediaType")
    if isinstance(media, str) and file_form(schema)[0]:
        return media  # (an Encoding Object's contentType, when given, wins over it)
    items = schema.get("items") if "array" in _types(schema) else None
    if "object" in _types(schema) or (isinstance(items, dict) and "object" in _types(items)):
        return "application/json"
    return None


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return {str(k) for k in kind}
    if kind is None and "properties" in schema:
        return {"object"}
    return {str(kind)}


def sub(located: Located, key: str) -> Located:
    return Located(located.node[key], located.uri, located.pointer + pointer_of(key))
