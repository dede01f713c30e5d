"""How a mistake in ``toolbridge.yaml`` is explained: pydantic's error turned into the file, line, key,
the valid choices and a "did you mean", without repeating a value that may be a secret."""

from __future__ import annotations

import json
import re
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel

from toolbridge._suggest import close_matches
from toolbridge.errors import ConfigFileError, did_you_mean

__all__ = ["config_error", "line_of", "yaml_hint"]


def yaml_hint(text: str, name: str, problem: str) -> str:
    """How to fix a file that is not YAML: TOML (a ``[section]`` line, or a ``.toml`` name), a tab, or
    the usual slips near the line named."""
    if name.endswith(".toml") or re.search(r"^\s*\[[\w.\-\"]+\]\s*$", text, re.MULTILINE):
        return (
            "toolbridge reads YAML, not TOML: write 'server:' with its keys indented below as "
            "'  port: 8080'; 'toolbridge init' writes a commented example"
        )
    if "\\t" in problem or "\t" in problem:  # PyYAML shows the tab escaped: found character '\\t'
        return "indent with spaces, not tabs"
    return (
        "check that line and the one above: each key ends with ':' and a space, nested keys are indented "
        "with spaces, and a value holding ': ' or starting with '*', '&', '[' or '{' is quoted"
    )


def config_error(
    exc: pydantic.ValidationError, root: yaml.Node | None, name: str, model: type[BaseModel]
) -> ConfigFileError:
    """The :class:`ConfigFileError` for pydantic's first error in a file validated as ``model``."""
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, _ = _walk(model, list(error["loc"]))
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append(str(error.get("ctx", {}).get("discriminator", "kind")).strip("'"))
    message, hint = _explain(model, error, loc)
    if loc and loc[-1] == "[key]":  # a name that is no string: located at the mapping that holds it
        loc = loc[:-2]
    key = ".".join(str(p) for p in loc) or None
    line = line_of(root, loc)
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigFileError(message, path=name, line=line, key=key, hint=hint)


def _walk(model: type[BaseModel], loc: list[Any]) -> tuple[list[Any], Any]:
    """``loc`` without the tags pydantic puts in it for a discriminated union (a connector's ``kind``, a
    connection's ``scheme``: not keys of the file), and the annotation ``loc`` leads to."""
    annotation: Any = model
    kept: list[Any] = []
    for part in loc:
        tagged = _tagged(annotation, part) if isinstance(part, str) and annotation is not None else None
        if tagged is not None:
            annotation = tagged
            continue
        kept.append(part)
        annotation = _step(annotation, part) if annotation is not None else None
    return kept, annotation


def _explain(model: type[BaseModel], error: Any, loc: list[Any]) -> tuple[str, str | None]:
    kind = error["type"]
    if loc and loc[-1] == "[key]" and isinstance(error.get("input"), bool):  # ``off:`` is YAML 1.1's false
        word = "on, yes or true" if error["input"] else "off, no or false"
        return (
            f"a name here was read as {str(error['input']).lower()}: YAML reads {word} as a boolean",
            "quote the name, as 'off': or \"yes\":",
        )
    if kind == "extra_forbidden":
        choices = sorted(_fields_at(model, list(error["loc"])[:-1]))  # with union tags: they pick the model
        hint = did_you_mean(close_matches(str(loc[-1]), choices))
        listing = f"valid keys here: {', '.join(choices)}" if choices else None
        return "unknown key", "; ".join(h for h in (hint, listing) if h) or None
    if kind in ("literal_error", "union_tag_invalid"):
        ctx = error.get("ctx", {})
        expected = ctx.get("expected") or ctx.get("expected_tags", "")
        value = ctx.get("tag", error.get("input")) if kind == "union_tag_invalid" else error.get("input")
        choices = [c.strip(" '") for c in str(expected).replace(" or ", ",").split(",") if c.strip(" '")]
        hint = did_you_mean(close_matches(str(value), choices))
        return f"{value!r} is not a valid choice; choose one of: {expected}", hint
    if kind == "union_tag_not_found":  # no ``kind:`` (a connector) or ``scheme:`` (a connection)
        key = loc[-1]
        members = _members(_walk(model, list(error["loc"]))[1])
        tags = (getattr(m.model_fields[key].annotation, "__args__", ()) for m in members)
        choices = list(dict.fromkeys(str(t) for some in tags for t in some))
        known = {name for m in members for name in m.model_fields}
        given = error.get("input") if isinstance(error.get("input"), dict) else {}
        # a key no member has whose value is a choice: "type: openapi" written for "kind: openapi"
        named = [k for k, v in given.items() if v in choices and k not in known]
        if named:
            hint = f"write '{key}: {given[named[0]]}': the key is {key!r}, not {named[0]!r}"
        else:
            hint = f"add '{key}: {choices[0]}' (or another)" if choices else None
        return f"missing {key!r}: say which one this is, one of: {', '.join(choices)}", hint
    if kind == "missing":
        return "this key is required but missing", "add it (see 'toolbridge init' for a commented example)"
    if kind == "value_error":  # our validators': the message says it all, and the value may be a secret
        return str(error["msg"]).removeprefix("Value error, "), None
    hint = _TYPE_HINTS.get(kind)
    if any(_SECRETISH.search(str(part)) for part in loc):
        return str(error["msg"]), hint  # never the value of a key that holds a credential
    value = error.get("input")
    if kind == "list_type" and isinstance(value, str | int | float):
        hint = f"write a list: [{json.dumps(value)}], or one '- item' per line below the key"
    shown = repr(value)
    return f"{error['msg']} (got {shown if len(shown) <= 80 else shown[:79] + '…'})", hint


_TYPE_HINTS = {
    "int_parsing": "write a whole number without quotes, e.g. 8080",
    "int_type": "write a whole number without quotes, e.g. 8080",
    "int_from_float": "write a whole number, without a fraction",
    "float_parsing": "write a number without quotes, e.g. 2.5",
    "float_type": "write a number without quotes, e.g. 2.5",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "list_type": "write a list: [a, b], or one '- item' per line below the key",
    "dict_type": "write its keys indented below it ('key: value', one per line)",
    "model_type": "write its keys indented below it ('key: value', one per line)",
    "model_attributes_type": "write its keys indented below it ('key: value', one per line)",
    "string_type": "write text; quote it if it reads as a number, true/false or null ('8080', 'yes')",
}
"""What to write instead, for pydantic's type errors (its message says only what was expected)."""


_SECRETISH = re.compile(r"secret|password|token|credential|auth|key|header|env", re.IGNORECASE)
"""Keys whose values are not repeated in an error: a credential pasted where a reference belongs."""


def _members(annotation: Any) -> list[type[BaseModel]]:
    """The models of the discriminated union ``annotation`` (inside ``Annotated``)."""
    members: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            members.append(arg)
        else:
            members.extend(_members(arg))
    return members


def _fields_at(model: type[BaseModel], loc: list[Any]) -> set[str]:
    """The keys allowed at a location (for "valid keys here")."""
    _, annotation = _walk(model, loc)
    found = _model_of(annotation) if annotation is not None else None
    return set(getattr(found, "model_fields", {})) - {"source"} if found else set()


def _step(annotation: Any, part: Any) -> Any:
    origin = getattr(annotation, "__origin__", None)
    if origin in (dict, list):
        return annotation.__args__[-1]  # the value type of a dict or list entry
    model = _model_of(annotation)
    field = getattr(model, "model_fields", {}).get(part) if model else None
    return field.annotation if field is not None else None


_DISCRIMINATORS = ("kind", "scheme")


def _tagged(annotation: Any, tag: str) -> type[BaseModel] | None:
    """The member of a discriminated union whose ``kind`` (a connector) or ``scheme`` (a connection) is
    ``tag``; None when ``annotation`` is no such union (``tag`` is then a key)."""
    if isinstance(annotation, type) or getattr(annotation, "__origin__", None) in (dict, list):
        return None
    for arg in getattr(annotation, "__args__", ()):
        model = _model_of(arg)
        fields = getattr(model, "model_fields", {}) if model else {}
        for name in _DISCRIMINATORS:
            field = fields.get(name)
            if field is not None and tag in getattr(field.annotation, "__args__", ()):
                return model
        found = _tagged(arg, tag)
        if found is not None:
            return found
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """The line of the deepest key in ``loc`` that exists in the document (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        key_line, node = found
        line = key_line
    return line


def _child(node: yaml.Node | None, part: Any) -> tuple[int, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: yaml.Node = node.value[part]
        return item.start_mark.line + 1, item
    return None
