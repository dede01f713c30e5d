"""Templates: values computed from a context with JMESPath, shared by the pipelines (arguments from the
run's input and earlier steps' outputs) and the router (a provider's arguments from the call's input).

A string that is exactly ``${ expression }`` becomes the expression's value (any JSON type); a string
with ``${…}`` inside other text becomes text (each value formatted as JSON unless it is a string).
Everything else is taken literally, through nested objects and lists. Expressions are JMESPath
(https://jmespath.org): a small, specified query language with no access to Python — nothing is
``eval``-ed. The context an expression sees::

    input            the run's input (validated against the pipeline's input schema)
    steps.NAME       the output of step NAME (a list of outputs for a for_each step)
    item, index      inside a for_each step: the current element and its position
    output           inside a compensation or a check: the output of the step it belongs to

``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from toolbridge.errors import ConfigurationError

__all__ = ["Expression", "Reference", "Template", "compile_template", "expression"]

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{(.*?)\}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A path an expression reads from its context: ``("steps", "download", "id")``."""

    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Expression:
    source: str
    parsed: ParsedResult

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        return self.parsed.search(context)

    def references(self) -> list[Reference]:
        return list(_references(self.parsed.parsed))


def expression(source: str) -> Expression:
    """A compiled JMESPath expression; a syntax error is a :class:`ConfigurationError` naming it."""
    try:
        return Expression(source, jmespath.compile(source))
    except JMESPathError as exc:
        raise ConfigurationError(
            f"{source!r} is not a valid expression: {str(exc).splitlines()[0]}",
            hint="expressions are JMESPath, such as input.url or steps.download.id",
        ) from exc


@dataclass(frozen=True, slots=True)
class Template:
    """A JSON value with ``${…}`` placeholders, compiled once."""

    value: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        return _render(self.value, context)

    def expressions(self) -> Iterator[tuple[str, Expression]]:
        """Every expression with the dotted location of the value it sits in (``"a.b[0]"``)."""
        yield from _walk(self.value, "")


@dataclass(frozen=True, slots=True)
class _Whole:
    expression: Expression


@dataclass(frozen=True, slots=True)
class _Text:
    parts: tuple[str | Expression, ...]


def compile_template(value: Any) -> Template:
    return Template(_compile(value))


def _compile(value: Any) -> Any:
    if isinstance(value, str):
        return _compile_text(value)
    if isinstance(value, Mapping):
        return {str(k): _compile(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_compile(v) for v in value]
    return value


def _compile_text(text: str) -> Any:
    parts: list[str | Expression] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        parts.append(text[last : match.start()])
        parts.append("${" if match.group(1) is None else expression(match.group(1).strip()))
        last = match.end()
    parts.append(text[last:])
    kept = [p for p in parts if p != ""]
    if len(kept) == 1 and isinstance(kept[0], Expression):
        return _Whole(kept[0])
    if all(isinstance(p, str) for p in kept):
        return "".join(str(p) for p in kept)
    return _Text(tuple(kept))


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, _Whole):
        return value.expression.evaluate(context)
    if isinstance(value, _Text):  # a part that comes out null leaves no text to make ("p-null" was sent)
        found = [p if isinstance(p, str) else p.evaluate(context) for p in value.parts]
        return None if any(f is None for f in found) else "".join(_format(f) for f in found)
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value


def _format(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _walk(value: Any, where: str) -> Iterator[tuple[str, Expression]]:
    if isinstance(value, _Whole):
        yield where, value.expression
    elif isinstance(value, _Text):
        for part in value.parts:
            if isinstance(part, Expression):
                yield where, part
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def whole_expression(template: Template) -> Expression | None:
    """The expression when the template is exactly one ``${…}`` (its value keeps its JSON type)."""
    return template.value.expression if isinstance(template.value, _Whole) else None


def field_expressions(template: Template) -> dict[str, Expression]:
    """Top-level argument name → expression, for arguments whose value is exactly one ``${…}``."""
    if not isinstance(template.value, dict):
        return {}
    return {k: v.expression for k, v in template.value.items() if isinstance(v, _Whole)}


def _references(node: Mapping[str, Any]) -> Iterator[Reference]:
    """Paths read from the root context (``input.url``, ``steps.a.id``); parts that read each element
    of a projection, or a filter's condition, are relative and not followed."""
    kind = node.get("type")
    children = [c for c in node.get("children", []) if isinstance(c, Mapping)]
    if kind == "field":
        yield Reference((node["value"],))
    elif kind == "subexpression":
        path = _leading_fields(node)
        if path:
            yield Reference(path)
        else:
            yield from _references(children[0])
    elif kind in _LEFT_ONLY:
        if children:
            yield from _references(children[0])
    else:
        for child in children:
            yield from _references(child)


_LEFT_ONLY = frozenset({"projection", "filter_projection", "value_projection", "flatten", "pipe"})


def _leading_fields(node: Mapping[str, Any]) -> tuple[str, ...]:
    """The dotted names at the start of a subexpression (``a.b.c`` → ("a", "b", "c"))."""
    names: list[str] = []
    for child in node.get("children", []):
        if child.get("type") == "field":
            names.append(child["value"])
        elif child.get("type") == "subexpression" and not names:
            names.extend(_leading_fields(child))
        else:
            break
    return tuple(names)
