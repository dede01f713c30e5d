"""What to write instead: the fix for an argument that failed its schema, beyond the validator's words.

Agents make the same few mistakes: a nested object or list sent as a JSON string, a number or a
boolean in quotes, one value where a list is expected, a misspelt enum value (or one in another case),
a date in their own format. Each gets a concrete fix.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from toolbridge._suggest import close_matches

if TYPE_CHECKING:  # jsonschema is imported when a call is validated, not when tools are listed
    from jsonschema.exceptions import ValidationError

__all__ = ["FORMAT_EXAMPLES", "how_to_fix"]

FORMAT_EXAMPLES = {
    "date-time": "2026-12-02T10:00:00Z",
    "date": "2026-12-02",
    "time": "10:00:00Z",
    "duration": "P1DT2H30M",
    "email": "ada@example.com",
    "idn-email": "ada@example.com",
    "uri": "https://example.com/path",
    "uri-reference": "/path?x=1",
    "iri": "https://example.com/path",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "api.example.com",
}
"""An example value per JSON Schema ``format``, shown when an argument does not match its format."""

_KINDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}
"""What to send, said for each JSON Schema type."""

_SCALARS: dict[str, tuple[type, ...]] = {"integer": (int,), "number": (int, float), "boolean": (bool,)}


def how_to_fix(error: ValidationError) -> str | None:
    """A phrase saying what to send instead, or None when the validator's message says it all."""
    if error.validator == "format":
        example = FORMAT_EXAMPLES.get(str(error.validator_value))
        return f"write it like {example!r}" if example else None
    if error.validator == "type":
        return _retyped(error.instance, error.validator_value)
    if error.validator in ("anyOf", "oneOf"):  # Optional[...] and kin
        return _retyped(error.instance, _branch_types(error.validator_value))
    if error.validator in ("maxLength", "minLength") and isinstance(error.instance, str):
        bound = "at most" if error.validator == "maxLength" else "at least"
        return f"send {bound} {error.validator_value:,} characters (this has {len(error.instance):,})"
    if error.validator == "enum" and isinstance(error.validator_value, list):
        match = _enum_match(str(error.instance), [v for v in error.validator_value if isinstance(v, str)])
        return f"did you mean {match!r}?" if match else None
    return None


def _enum_match(sent: str, choices: list[str]) -> str | None:
    """The choice ``sent`` means: the same word in another case ('HIGH' for 'high'), else the closest
    in spelling, case aside."""
    by_case = {choice.casefold(): choice for choice in reversed(choices)}  # the first of equal ones
    if sent.casefold() in by_case:
        return by_case[sent.casefold()]
    match = close_matches(sent.casefold(), by_case, n=1)
    return by_case[match[0]] if match else None


def _retyped(sent: Any, expected: Any) -> str | None:
    """The fix for a value of the wrong JSON type: JSON sent as a string (``"5"``, ``"{...}"``), or one
    value where a list is expected (``"A1"`` for ``["A1"]``)."""
    kinds = expected if isinstance(expected, list) else [expected]
    wanted = [_KINDS[kind] for kind in kinds if kind in _KINDS]
    if (sent is None and "null" not in kinds) or (isinstance(sent, bool) and "boolean" not in kinds):
        return f"send {' or '.join(wanted)}" if wanted else None  # null or a boolean for a number, a string
    fix = _unquoted(sent, kinds) if isinstance(sent, str) else None
    if fix is None and "array" in kinds and sent is not None and not isinstance(sent, dict | list):
        return f"send a list: {json.dumps([sent], ensure_ascii=False)}"
    return fix


def _branch_types(branches: Any) -> list[str]:
    """The JSON types the branches of an ``anyOf``/``oneOf`` name (``{"type": ...}`` of each)."""
    kinds: list[str] = []
    for branch in branches if isinstance(branches, list) else []:
        kind = branch.get("type") if isinstance(branch, dict) else None
        kinds.extend(kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else [])
    return kinds


def _unquoted(text: str, kinds: list[Any]) -> str | None:
    """The fix for a value sent as a string that holds the expected JSON (``"{...}"``, ``"5"``)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and "object" in kinds:
        return "that is a string holding JSON: send the object itself, not a string"
    if isinstance(value, list) and "array" in kinds:
        return "that is a string holding JSON: send the list itself, not a string"
    for kind in kinds:
        scalar = _SCALARS.get(kind)
        if (
            scalar is not None
            and isinstance(value, scalar)
            and (kind == "boolean") == isinstance(value, bool)
        ):
            return f"send {json.dumps(value)} without quotes"
    return None
