"""Argument mappings: each provider's arguments computed from the capability's input with JMESPath.

A mapping is ``{argument: expression}``. The expression is JMESPath (https://jmespath.org), evaluated
against the capability's input: ``path`` copies the input field ``path``, ``file.name`` reaches into an
object, ``'uploads'`` is a constant string, ``join('/', [folder, name])`` builds a value. An expression
that yields ``null`` leaves its argument out, so optional input stays optional. JMESPath has no side
effects and no access to anything but the input: nothing is ``eval``-ed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from toolbridge.errors import ConfigurationError

__all__ = ["ArgumentMapping", "Expression"]

Path = tuple[str, ...]

# nodes whose first child is evaluated against the current value and the rest against its result
_LEFT_ONLY = frozenset(
    {"subexpression", "index_expression", "projection", "value_projection", "filter_projection", "pipe"}
)
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled expression and what it reads from the input."""

    text: str
    compiled: ParsedResult

    @classmethod
    def compile(cls, text: str) -> Expression:
        try:
            return cls(text, jmespath.compile(text))
        except JMESPathError as exc:
            raise ConfigurationError(
                f"{text!r} is not a JMESPath expression: {_first_line(exc)}",
                hint="write a field name such as 'path', a constant such as \"'uploads'\", "
                "or see https://jmespath.org/specification.html",
            ) from None

    def search(self, data: Mapping[str, Any]) -> Any:
        return self.compiled.search(data)

    def input_paths(self) -> list[Path]:
        """The input fields the expression reads from the top of the input (``a.b`` → ``("a", "b")``)."""
        return list(_root_paths(self.compiled.parsed))

    def direct_path(self) -> Path | None:
        """The field path when the whole expression is one (``a`` or ``a.b``), else None."""
        return _as_path(self.compiled.parsed)

    def constant_type(self) -> str | None:
        """The JSON type of a constant expression (```` `3` ````, ``'x'``), else None."""
        node = self.compiled.parsed
        if node["type"] != "literal":
            return None
        return _JSON_TYPES.get(type(node["value"])) if node["value"] is not None else "null"


class ArgumentMapping:
    """``{argument: expression}`` for one provider; :meth:`apply` computes the provider's arguments."""

    def __init__(self, expressions: Mapping[str, str]) -> None:
        compiled = {}
        for argument, text in expressions.items():
            try:
                compiled[argument] = Expression.compile(text)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{argument}: {exc.message}", hint=exc.hint) from None
        self.expressions: Mapping[str, Expression] = compiled

    @classmethod
    def identity(cls, fields: list[str]) -> ArgumentMapping:
        """Each input field passed on under its own name (the mapping when none is written)."""
        return cls({name: _quote_field(name) for name in fields})

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for argument, expression in self.expressions.items():
            value = expression.search(data)
            if value is not None:
                out[argument] = value
        return out

    def __iter__(self) -> Iterator[tuple[str, Expression]]:
        return iter(self.expressions.items())


def _quote_field(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _root_paths(node: Mapping[str, Any]) -> Iterator[Path]:
    path = _as_path(node)
    if path is not None:
        yield path
        return
    kind = node["type"]
    children = node.get("children", [])
    if kind in ("literal", "current", "identity", "expref"):
        return
    if kind in _LEFT_ONLY:
        children = children[:1]
    for child in children:
        if isinstance(child, Mapping):
            yield from _root_paths(child)


def _as_path(node: Mapping[str, Any]) -> Path | None:
    if node["type"] == "field":
        return (str(node["value"]),)
    if node["type"] == "subexpression":
        parts: list[str] = []
        for child in node["children"]:
            sub = _as_path(child)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
