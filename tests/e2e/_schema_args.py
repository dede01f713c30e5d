"""Arguments from a tool's input schema: the smallest values that satisfy it, formats and patterns included.

Deterministic (no randomness; the search for a pattern's example is seeded by the pattern), so a failing
operation fails the same way on every run. Patterns are satisfied with hypothesis' regex strategy (its
minimal example).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

__all__ = ["arguments_for"]

_FORMATS: dict[str, Any] = {
    "date-time": "2024-01-02T03:04:05Z",
    "date": "2024-01-02",
    "time": "03:04:05Z",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "email": "user@example.com",
    "uri": "https://example.com/a",
    "url": "https://example.com/a",
    "uri-reference": "/a",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "byte": "aGVsbG8=",
    "binary": "hello",
    "duration": "P1D",
}


def arguments_for(schema: Mapping[str, Any], rng: random.Random | None = None) -> dict[str, Any]:
    """Every required top-level argument and, without ``rng``, every optional one; with ``rng``, each
    optional one with probability ½ (a seeded random subset). Nested objects get their required members.

    An optional argument whose generated value does not satisfy its own schema is left out (some
    documents declare unsatisfiable ones, such as a date-time that must also match a placeholder).
    """
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    props: Mapping[str, Any] = {
        name: sub
        for name, sub in schema.get("properties", {}).items()
        if rng is None or name in required or rng.random() < 0.5
    }
    values = {name: _value(sub, defs, 0) for name, sub in props.items()}
    return {k: v for k, v in values.items() if k in required or _valid(v, props[k], defs)}


def _valid(value: Any, schema: Any, defs: Mapping[str, Any]) -> bool:
    if not isinstance(schema, dict):
        return True
    validator = Draft202012Validator(
        {**schema, "$defs": defs}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return bool(validator.is_valid(value))


def _value(schema: Any, defs: Mapping[str, Any], depth: int, full: bool = False) -> Any:
    if not isinstance(schema, dict):
        return "x"
    if "$ref" in schema:
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return _value(target, defs, depth + 1, full) if depth < 8 else {}
    if "const" in schema:
        return schema["const"]
    enum = [v for v in schema.get("enum", []) if v is not None]
    if enum:
        return enum[0]
    if "anyOf" in schema:
        return _any_of(schema, defs, depth, full)
    if "allOf" in schema:
        return _all_of(schema, defs, depth, full)
    return _typed(schema, _type(schema), defs, depth, full)


def _any_of(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int, full: bool) -> Any:
    """A value that matches exactly one branch, when there is one (the document may say ``oneOf``).

    Branches often differ only in optional members, so a second round fills those in too.
    """
    branches = [b for b in schema["anyOf"] if b.get("type") != "null"] or schema["anyOf"]
    own = _strip(schema, "anyOf")
    first: Any = None
    for rich in sorted({full, True}):
        candidates = [_value(_within(own, b), defs, depth + 1, rich) for b in branches]
        first = candidates[0] if first is None else first
        for candidate in candidates:
            if sum(_valid(candidate, b, defs) for b in branches) == 1:
                return candidate
    return first


def _within(own: Mapping[str, Any], branch: Mapping[str, Any]) -> dict[str, Any]:
    """A branch seen with the schema around it: both lists of required members hold (GitHub's
    ``required: [type], oneOf: [{required: [id]}, {required: [owner, repo, number]}]``)."""
    merged = {**own, **branch}
    if "required" in own and "required" in branch:
        merged["required"] = list(dict.fromkeys([*own["required"], *branch["required"]]))
    return merged


def _strip(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in (key, "description")}


def _all_of(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int, full: bool) -> Any:
    values = [_value(part, defs, depth + 1, full) for part in schema["allOf"]]
    own = _strip(schema, "allOf")
    if own:
        values.append(_value(own, defs, depth + 1, full))
    merged: dict[str, Any] = {}
    for value in values:
        if not isinstance(value, dict):
            return value
        merged.update(value)
    return merged


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    return str(kind)


def _typed(schema: Mapping[str, Any], kind: str, defs: Mapping[str, Any], depth: int, full: bool) -> Any:
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        item = _value(schema.get("items", {}), defs, depth + 1, full)
        if schema.get("uniqueItems") and count > 1:
            return [item] + [f"{item}{i}" for i in range(1, count)]
        return [item] * count
    if kind == "object":
        return _object(schema, defs, depth, full)
    return None


def _object(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int, full: bool) -> dict[str, Any]:
    props = schema.get("properties", {})
    needed = list(props) if full and depth < 6 else schema.get("required", [])
    out = {name: _value(props.get(name, {}), defs, depth + 1, full) for name in needed if name in props}
    for name in needed:
        out.setdefault(name, "x")
    return out


def _string(schema: Mapping[str, Any]) -> str:
    if "pattern" in schema:
        return _matching(schema["pattern"], int(schema.get("minLength", 0)), schema.get("maxLength"))
    text = _FORMATS.get(str(schema.get("format")), "example")
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[: max(high, low)]
    return text


_FIND = settings(
    database=None,
    max_examples=2000,
    suppress_health_check=list(HealthCheck),
    # Without the explain phase: it only annotates a failing example (which parts could vary) and does
    # not change the minimal one ``find`` returns, but it took ~95% of the time (44 -> 2 s CPU for the
    # 35 patterns of the prism documents, every answer identical).
    phases=[phase for phase in Phase if phase is not Phase.explain],
)


@functools.lru_cache(maxsize=512)
def _matching(pattern: str, low: int, high: int | None) -> str:
    def fits(text: str) -> bool:
        return len(text) >= low and (high is None or len(text) <= high)

    try:
        return find(
            st.from_regex(re.compile(pattern), fullmatch=True),
            fits,
            settings=_FIND,
            random=random.Random(pattern),
        )
    except Exception:  # noqa: BLE001 - an unsatisfiable pattern is reported by the upstream, not here
        return "x" * max(low, 1)


def _number(schema: Mapping[str, Any], kind: str) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, int | float):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
        value = max(value, 1) if isinstance(high, int | float) and high >= 1 else value
    if isinstance(high, int | float) and value > high:
        value = high
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = step * max(1, round(value / step))
    return int(value) if kind == "integer" else float(value)
