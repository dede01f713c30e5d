"""A compact copy of a tool's input schema, for reading: what an agent needs to build a call, smaller.

Large API schemas repeat whole sub-schemas (the same ``message`` object under ten properties) and
carry long descriptions and enums at every level; read whole, one OpenAI operation is 170 KB. The
compact copy, in this order and only as far as needed to fit ``budget`` bytes:

1. sub-schemas that occur more than once are stored once under ``$defs`` and referenced (``$ref``);
2. descriptions are cut to :data:`DESCRIPTION_CHARS` and enums over :data:`ENUM_VALUES` values are
   summarised (the first values kept, the count in ``x-enum-count``);
3. descriptions below the top-level properties are dropped;
4. top-level properties still over :data:`STUB_BYTES` become stubs that say how to ask for them
   (``property='input'``: :func:`sub_schema`, compacted the same way).

Validation always uses the tool's own schema; the compact copy is only what the agent reads.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DESCRIPTION_CHARS", "ENUM_VALUES", "STUB_BYTES", "compact_schema", "plain_json", "sub_schema"]

DESCRIPTION_CHARS = 200
ENUM_VALUES = 20
STUB_BYTES = 2_000
_SHARED_MIN_BYTES = 200  # smaller repeats cost less inline than as a $ref
_Visit = Callable[[dict[str, Any], int], dict[str, Any]]
_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DATA = frozenset({"enum", "const", "default", "example", "examples", "required"})


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def compact_schema(schema: Mapping[str, Any], *, budget: int, path: str = "") -> tuple[dict[str, Any], bool]:
    """``(schema, changed)``: ``schema`` itself (as plain data) when it fits ``budget`` bytes, else the
    compact copy described in the module docstring; ``changed`` says whether anything was left out.
    ``path`` is where ``schema`` sits in a tool's arguments (``input.items``), for the stubs' pointers."""
    plain = plain_json(schema)
    if _size(plain) <= budget:
        return plain, False
    steps: list[Callable[[Any], Any]] = [_shared, _trimmed, _top_descriptions_only]
    for step in steps:
        plain = step(plain)
        if _size(plain) <= budget:
            return plain, True
    return _stubs(plain, path), True


def sub_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The schema of the argument at the dotted ``path`` (``input.items``), or None if there is none."""
    node: Any = schema
    for name in path.split("."):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or name not in props:
            return None
        node = props[name]
    return node if isinstance(node, Mapping) else None


def plain_json(value: Any) -> Any:
    """A deep copy of a JSON value made of dicts and lists (schemas may hold read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


def _map(schema: dict[str, Any], fn: _Visit, depth: int) -> dict[str, Any]:
    """``schema`` with ``fn`` applied to each of its direct sub-schemas (depth: 1 for a top-level
    property); maps of named schemas and literal values (``enum``, ``default`` …) are not schemas."""

    def each(item: Any, at: int) -> Any:
        if isinstance(item, list):
            return [each(v, at) for v in item]
        return fn(item, at) if isinstance(item, dict) else item

    out: dict[str, Any] = {}
    for key, item in schema.items():
        if key in _DATA:
            out[key] = item
        elif key in _MAPS and isinstance(item, dict):
            out[key] = {name: each(sub, depth + (key == "properties")) for name, sub in item.items()}
        else:
            out[key] = each(item, depth)
    return out


def _walk(value: dict[str, Any], fn: _Visit, depth: int = 0) -> dict[str, Any]:
    """Rebuild a schema bottom-up, passing every sub-schema (and itself) through ``fn``."""
    return fn(_inside(value, fn, depth), depth)


def _inside(schema: dict[str, Any], fn: _Visit, depth: int) -> dict[str, Any]:
    """``schema`` with every sub-schema rebuilt by :func:`_walk` (not ``schema`` itself)."""
    return _map(schema, lambda sub, at: _walk(sub, fn, at), depth)


def _shared(schema: dict[str, Any]) -> dict[str, Any]:
    """Sub-schemas that occur more than once, largest first, stored once under ``$defs``."""
    counts: Counter[str] = Counter()

    def count(node: dict[str, Any], _depth: int) -> dict[str, Any]:
        text = json.dumps(node, sort_keys=True)
        if len(text) >= _SHARED_MIN_BYTES:
            counts[text] += 1
        return node

    _inside(schema, count, 0)
    names: dict[str, str] = {}
    defs: dict[str, Any] = {}

    def share(node: dict[str, Any], depth: int) -> dict[str, Any]:
        text = json.dumps(node, sort_keys=True)
        if counts.get(text, 0) < 2:
            return _map(node, share, depth)
        if text not in names:
            names[text] = f"shared{len(names) + 1}"
            defs[names[text]] = _map(node, share, depth)
        return {"$ref": f"#/$defs/{names[text]}"}

    top = _map(schema, share, 0)
    if defs:
        top["$defs"] = {**(top.get("$defs") or {}), **defs}
    return top


def _trimmed(schema: dict[str, Any]) -> dict[str, Any]:
    def trim(node: dict[str, Any], _depth: int) -> dict[str, Any]:
        out = dict(node)
        text = out.get("description")
        if isinstance(text, str) and len(text) > DESCRIPTION_CHARS:
            out["description"] = text[: DESCRIPTION_CHARS - 1].rstrip() + "…"
        values = out.get("enum")
        if isinstance(values, list) and len(values) > ENUM_VALUES:
            out["enum"] = values[:ENUM_VALUES]
            out["x-enum-count"] = len(values)
        return out

    result: dict[str, Any] = _walk(schema, trim)
    return result


def _top_descriptions_only(schema: dict[str, Any]) -> dict[str, Any]:
    def drop(node: dict[str, Any], depth: int) -> dict[str, Any]:
        if depth <= 1 or not isinstance(node.get("description"), str):
            return node
        return {k: v for k, v in node.items() if k != "description"}

    top: dict[str, Any] = _inside({k: v for k, v in schema.items() if k != "$defs"}, drop, 0)
    if "$defs" in schema:
        top["$defs"] = {
            k: _walk(v, drop, 2) if isinstance(v, dict) else v for k, v in schema["$defs"].items()
        }
    return top


def _stubs(schema: dict[str, Any], path: str) -> dict[str, Any]:
    """Top-level properties still over :data:`STUB_BYTES` become a stub naming how to get them."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return schema
    defs = schema.get("$defs") or {}
    out = dict(props)
    for name, prop in props.items():
        weight = _size(prop) + _size(_reachable(prop, defs)) if isinstance(prop, dict) else 0
        if weight > STUB_BYTES:
            stub = {k: prop[k] for k in ("type", "description") if k in prop}
            where = f"{path}.{name}" if path else name
            out[name] = {
                **stub,
                "x-compact": f"{weight:,} bytes left out: describe it with property={where!r}",
            }
    kept = {k: v for k, v in schema.items() if k != "$defs"} | {"properties": out}
    used = _reachable(kept, defs)
    return {**kept, "$defs": used} if used else kept


def _reachable(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The ``$defs`` entries ``schema`` refers to, directly or through other entries."""
    found: dict[str, Any] = {}
    pending = [json.dumps(schema)]
    while pending:
        text = pending.pop()
        for name, value in defs.items():
            if name not in found and f'"#/$defs/{name}"' in text:
                found[name] = value
                pending.append(json.dumps(value))
    return found
