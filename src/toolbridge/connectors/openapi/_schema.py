"""OpenAPI / Swagger schemas → compact JSON Schema (2020-12) that MCP clients accept, converted once.

* ``$ref``s are inlined (each target converted once and shared); a recursive schema becomes one entry of
  the tool's ``$defs`` referred to by ``#/$defs/Name`` — never duplicated;
* 3.0 ``nullable`` / Swagger ``x-nullable`` become 3.1-style type arrays; 3.1 type arrays pass through;
* ``oneOf`` becomes ``anyOf`` (strict ``oneOf`` rejects valid input when branches overlap, as they do in
  most real documents); ``allOf`` of plain object schemas is merged into one object;
* ``readOnly`` properties are dropped from request schemas; ``writeOnly`` ones kept;
* examples, titles, XML hints, vendor extensions and discriminator objects are dropped; descriptions are
  trimmed; a pattern Python's ``re`` cannot compile and an empty ``enum`` (which allows no value) are
  dropped (and reported).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolbridge.connectors.openapi._refs import Located, RefError, Resolver, pointer_of

__all__ = ["Converted", "SchemaConverter", "brief", "trim_text"]

Schema = dict[str, Any]

_KEEP = (
    "format",
    "const",
    "default",
    "multipleOf",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "contentMediaType",
    "contentEncoding",
    "dependentRequired",
    "minContains",
    "maxContains",
)
_SUBSCHEMAS = (
    "additionalProperties",
    "items",
    "not",
    "propertyNames",
    "contains",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
)
"""Keywords whose value is one schema: converted like the schema around them (the conditions and
dependencies of 3.1's JSON Schema constrain a call as much as ``properties`` do)."""
_MERGEABLE = {"type", "properties", "required", "description", "additionalProperties"}
_REF_SKIP = {"$ref", "nullable", "x-nullable", "example", "examples", "title"}
_MAX_DEPTH = 48
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
_TAG = re.compile(r"</?[a-zA-Z][^>]{0,200}>")
_SENTENCE = re.compile(r"(?<=[a-z0-9)`'\"][.!?])\s+(?=[A-Z`(\[])|\n")
_WRAP = re.compile(r"(?<=\S)\n(?=[^\s\-*+#|>0-9])")


def _clean(text: str) -> str:
    """Markdown links kept as their text, HTML tags dropped, blank space collapsed."""
    text = text.strip()
    if "](" in text:
        text = _LINK.sub(r"\1", text)
    if "<" in text:
        text = _TAG.sub("", text)
    if "  " not in text and "\t" not in text and "\n" not in text:
        return text
    return re.sub(r"[ \t]+", " ", re.sub(r"\n\s*\n\s*", "\n\n", text)).strip()


@functools.lru_cache(maxsize=8192)
def trim_text(text: str | None, limit: int) -> str:
    """``text`` cleaned (:func:`_clean`), cut at a word boundary to ``limit`` characters."""
    if not text:
        return ""
    return _cut(_clean(text), limit)


@functools.lru_cache(maxsize=8192)
def brief(text: str | None, limit: int) -> str:
    """The first sentence of ``text`` (what an argument is), cleaned and cut to ``limit`` characters."""
    if not text:
        return ""
    cleaned = _clean(text)
    if "\n" in cleaned:
        cleaned = _WRAP.sub(" ", cleaned)  # a hard line wrap inside a sentence is not its end
    first = _SENTENCE.split(cleaned, maxsplit=1)[0].strip()
    return _cut(first if len(first) >= 12 else cleaned, limit)


def _cut(cleaned: str, limit: int) -> str:
    if len(cleaned) <= limit:
        return cleaned
    cut = cleaned[: max(limit - 1, 1)]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,.;:") + "…"


@dataclass(frozen=True, slots=True)
class Converted:
    """A converted schema, the ``$defs`` it refers to, and notes on anything degraded."""

    schema: Schema
    defs: Mapping[str, Schema]
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class _Walk:
    stack: list[str] = field(default_factory=list)
    defs: dict[str, Schema] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    recursive: set[str] = field(default_factory=set)
    emitted: int = 0
    notes: list[str] = field(default_factory=list)

    def def_ref(self, key: str) -> Schema:
        if key not in self.names:
            base = _NAME_CHARS.sub("_", key.rsplit("/", 1)[-1]) or "Schema"
            name, n = base, 2
            while name in self.names.values():
                name, n = f"{base}{n}", n + 1
            self.names[key] = name
        self.emitted += 1
        return {"$ref": f"#/$defs/{self.names[key]}"}


class SchemaConverter:
    """Converts schemas of one document; caches converted ``$ref`` targets across operations."""

    def __init__(self, resolver: Resolver, *, nullable_keyword: bool, description_chars: int = 200) -> None:
        self._resolver = resolver
        self._nullable_keyword = nullable_keyword
        self._chars = description_chars
        self._cache: dict[str, tuple[Schema, tuple[str, ...]]] = {}

    def convert(self, located: Located) -> Converted:
        """Convert one schema (raises :class:`RefError` for a broken ``$ref``)."""
        walk = _Walk()
        schema = self._node(located, walk, 0)
        return Converted(schema, walk.defs, tuple(walk.notes))

    def is_read_only(self, located: Located) -> bool:
        node = located.node
        if isinstance(node, dict) and "$ref" in node and "readOnly" not in node:
            node = self._resolver.deref(located).node
        return isinstance(node, dict) and node.get("readOnly") is True

    # -- nodes --------------------------------------------------------------------------------------

    def _node(self, located: Located, walk: _Walk, depth: int) -> Schema:
        node = located.node
        if isinstance(node, bool):
            return {} if node else {"not": {}}
        if not isinstance(node, dict):
            where = self._resolver.where(located)
            walk.notes.append(f"{where}: a schema that is not an object was read as 'any value'")
            return {}
        if depth > _MAX_DEPTH:
            walk.notes.append(f"{self._resolver.where(located)}: nested too deeply; accepted as any value")
            return {}
        if isinstance(node.get("$ref"), str):
            return self._ref(located, walk, depth)
        return self._object(located, walk, depth)

    def _ref(self, located: Located, walk: _Walk, depth: int) -> Schema:
        try:
            target = self._resolver.deref(located)
        except RefError as exc:
            walk.notes.append(f"{self._resolver.where(located)}: {exc.message}; accepted as any value")
            return {}
        key = target.key
        if key in walk.stack or key in walk.defs:
            walk.recursive.add(key)
            result = walk.def_ref(key)
        elif key in self._cache:
            result, notes = self._cache[key]
            walk.notes.extend(notes)  # what a shared schema loosens, every tool using it reports
        else:
            result = self._expand(target, walk, depth)
        siblings = {k: v for k, v in located.node.items() if k not in _REF_SKIP}
        if siblings:
            extra = self._object(Located(siblings, located.uri, located.pointer), walk, depth)
            result = _combine(result, extra) if extra else result
        if self._is_nullable(located.node):
            result = {"anyOf": [result, {"type": "null"}]}
        return result

    def _expand(self, target: Located, walk: _Walk, depth: int) -> Schema:
        key = target.key
        before, noted = walk.emitted, len(walk.notes)
        walk.stack.append(key)
        try:
            result = self._node(target, walk, depth + 1)
        finally:
            walk.stack.pop()
        if key in walk.recursive:
            walk.defs[walk.names[key]] = result
            return walk.def_ref(key)
        if walk.emitted == before:
            self._cache[key] = (result, tuple(walk.notes[noted:]))
        return result

    def _object(self, located: Located, walk: _Walk, depth: int) -> Schema:
        node: dict[str, Any] = located.node
        out: Schema = {}
        self._type(node, out)
        self._enum(located, out, walk)
        for key in _KEEP:
            if key in node:
                out[key] = node[key]
        self._numbers(node, out)
        self._strings(located, out, walk)
        self._children(located, out, walk, depth)
        if self._is_nullable(node):
            _add_null(out)
        return _merge_all_of(out)

    def _type(self, node: Mapping[str, Any], out: Schema) -> None:
        kind = node.get("type")
        if kind == "file":
            out["type"] = "string"
            out["format"] = "binary"
        elif isinstance(kind, str):
            out["type"] = kind
        elif isinstance(kind, list):
            kinds = [k for k in dict.fromkeys(kind) if isinstance(k, str)]
            out["type"] = kinds[0] if len(kinds) == 1 else kinds

    def _enum(self, located: Located, out: Schema, walk: _Walk) -> None:
        enum = located.node.get("enum")
        if not isinstance(enum, list):
            return
        if enum:
            out["enum"] = list(enum)
            return
        # no value is in an empty enum: kept, it refuses every call (Discord: {enum: [], allOf: [$ref]})
        walk.notes.append(f"{self._resolver.where(located)}: an empty 'enum' allows no value; left out")

    def _numbers(self, node: Mapping[str, Any], out: Schema) -> None:
        for bound, key in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            flag = node.get(key)
            if flag is True and bound in node:
                out[key] = out.pop(bound)
            elif isinstance(flag, int | float) and not isinstance(flag, bool):
                out[key] = flag

    def _strings(self, located: Located, out: Schema, walk: _Walk) -> None:
        node = located.node
        text = node.get("description")
        if isinstance(text, str) and text.strip():
            out["description"] = brief(text, self._chars)
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
                out["pattern"] = pattern
            except re.error:
                walk.notes.append(
                    f"{self._resolver.where(located)}: pattern {pattern!r} is not a Python regex; not checked"
                )
        required = node.get("required")
        if isinstance(required, list):
            out["required"] = [r for r in dict.fromkeys(required) if isinstance(r, str)]

    def _children(self, located: Located, out: Schema, walk: _Walk, depth: int) -> None:
        node = located.node
        if isinstance(node.get("properties"), dict):
            self._properties(located, out, walk, depth)
        for key in _SUBSCHEMAS:
            if key in node:
                out[key] = self._child(located, walk, depth, key)
        if isinstance(node.get("patternProperties"), dict):
            self._pattern_properties(located, out, walk, depth)
        if isinstance(node.get("dependentSchemas"), dict):
            parent = _sub(located, "dependentSchemas")
            out["dependentSchemas"] = {
                name: self._node(
                    Located(value, parent.uri, parent.pointer + pointer_of(name)), walk, depth + 1
                )
                for name, value in parent.node.items()
            }
        if isinstance(node.get("items"), list):
            out["items"] = {"anyOf": self._list(located, "items", walk, depth)}
        if isinstance(node.get("prefixItems"), list):
            out["prefixItems"] = self._list(located, "prefixItems", walk, depth)
        for key in ("allOf", "anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                out.setdefault("allOf" if key == "allOf" else "anyOf", []).extend(
                    self._list(located, key, walk, depth)
                )

    def _child(self, located: Located, walk: _Walk, depth: int, key: str) -> Any:
        value = located.node[key]
        if isinstance(value, bool):
            return value
        return self._node(_sub(located, key), walk, depth + 1)

    def _list(self, located: Located, key: str, walk: _Walk, depth: int) -> list[Schema]:
        parent = _sub(located, key)
        return [
            self._node(Located(item, located.uri, parent.pointer + pointer_of(i)), walk, depth + 1)
            for i, item in enumerate(located.node[key])
        ]

    def _properties(self, located: Located, out: Schema, walk: _Walk, depth: int) -> None:
        parent = _sub(located, "properties")
        if isinstance(parent.node.get("$ref"), str):  # the whole map kept in another place
            try:
                parent = self._resolver.deref(parent)
            except RefError as exc:
                walk.notes.append(f"{self._resolver.where(parent)}: {exc.message}; properties not checked")
                return
            if not isinstance(parent.node, dict):
                return
        properties: Schema = {}
        dropped: set[str] = set()
        for name, value in parent.node.items():
            child = Located(value, parent.uri, parent.pointer + pointer_of(name))
            if self.is_read_only(child):
                dropped.add(name)
                continue
            properties[name] = self._node(child, walk, depth + 1)
        out["properties"] = properties
        if "required" in out:
            out["required"] = [r for r in out["required"] if r not in dropped]
            if not out["required"]:
                del out["required"]

    def _pattern_properties(self, located: Located, out: Schema, walk: _Walk, depth: int) -> None:
        """Member names by pattern: kept, or else ``additionalProperties: false`` beside them would refuse
        every such member. A pattern Python cannot compile is left out, and with it that refusal."""
        parent = _sub(located, "patternProperties")
        kept: Schema = {}
        for pattern, value in parent.node.items():
            try:
                re.compile(pattern)
            except re.error:
                walk.notes.append(
                    f"{self._resolver.where(parent)}: pattern {pattern!r} is not a Python regex; the members "
                    "it names are not checked"
                )
                out.pop("additionalProperties", None)
                continue
            kept[pattern] = self._node(
                Located(value, parent.uri, parent.pointer + pointer_of(pattern)), walk, depth + 1
            )
        if kept:
            out["patternProperties"] = kept

    def _is_nullable(self, node: Mapping[str, Any]) -> bool:
        return bool(
            node.get("x-nullable") is True or (self._nullable_keyword and node.get("nullable") is True)
        )


def _sub(located: Located, key: str) -> Located:
    return Located(located.node[key], located.uri, located.pointer + pointer_of(key))


def _add_null(out: Schema) -> None:
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    elif isinstance(kind, list):
        if "null" not in kind:
            out["type"] = [*kind, "null"]
    else:
        inner = {k: v for k, v in out.items() if k != "description"}
        if not inner:
            return
        for key in inner:
            del out[key]
        out["anyOf"] = [inner, {"type": "null"}]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]


def _combine(base: Schema, extra: Schema) -> Schema:
    """A referenced schema with sibling keywords (3.1 allows ``description`` next to ``$ref``)."""
    if set(extra) <= {"description", "default"}:
        return {**base, **extra}
    return {"allOf": [base, extra]}


def _merge_all_of(out: Schema) -> Schema:
    parts: Sequence[Schema] = out.get("allOf", ())
    if not parts or not all(_mergeable(p) for p in parts):
        return out
    merged: Schema = {k: v for k, v in out.items() if k != "allOf"}
    properties: Schema = dict(merged.get("properties", {}))
    required: list[str] = list(merged.get("required", []))
    for part in parts:
        for name, value in part.get("properties", {}).items():
            properties[name] = value if name not in properties else {"allOf": [properties[name], value]}
        required.extend(part.get("required", []))
        if "description" not in merged and "description" in part:
            merged["description"] = part["description"]
    if properties or merged.get("type") == "object" or any(p.get("type") == "object" for p in parts):
        merged["type"] = "object"
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _mergeable(part: Schema) -> bool:
    return (
        set(part) <= _MERGEABLE
        and part.get("type", "object") == "object"
        and ("additionalProperties" not in part or part["additionalProperties"] is True)
    )
