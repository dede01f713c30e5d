"""Argument mappings: each provider's arguments computed from the capability's input.

A mapping is ``{argument: template}`` in the pipelines' template syntax (``toolbridge.pipelines``, one
syntax for both patterns): a string that is exactly ``${ expression }`` becomes the expression's value
(any JSON type), ``${…}`` inside other text becomes text, and anything else is taken literally. The
expression is JMESPath over ``{"input": <the capability's input>}``: ``${input.path}`` copies a field,
``${input.topic || 'inbox'}`` gives a default, ``${join('/', [input.folder, input.name])}`` builds a
value. An argument whose value comes out ``null`` is left out, so optional input stays optional.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# one template language for routers and pipelines (both JMESPath); the module is the pipelines' own
from toolbridge._template import Template, compile_template, whole_expression
from toolbridge.errors import ConfigurationError

__all__ = ["OUTPUT", "Argument", "ArgumentMapping", "ResultMapping"]

Path = tuple[str, ...]
ROOT = "input"
"""The name the capability's input has in expressions."""
OUTPUT = "output"
"""The name a provider's result has in its ``result`` mapping's expressions."""
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


class Argument:
    """One provider argument's template, and what the load-time checks need to know of it."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.source = value
        self.template: Template = compile_template(value)

    def texts(self) -> Iterator[str]:
        """The source of each expression in the template."""
        return (e.source for _, e in self.template.expressions())

    def reads(self) -> Iterator[Path]:
        """Every path the template's expressions read from the root (``("input", "path")``)."""
        for _, expression in self.template.expressions():
            for reference in expression.references():
                yield reference.path

    def direct_path(self) -> Path | None:
        """The field path when the whole value is one ``${input.a.b}``, else None."""
        expression = whole_expression(self.template)
        return _as_path(expression.parsed.parsed) if expression is not None else None

    def constant_type(self) -> str | None:
        """The JSON type of a value with no expression in it, else None."""
        if any(True for _ in self.template.expressions()):
            return None
        return "null" if self.source is None else _JSON_TYPES.get(type(self.source))


class ArgumentMapping:
    """``{argument: template}`` for one provider; :meth:`apply` computes the provider's arguments."""

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        self.arguments: dict[str, Argument] = {}
        for name, value in arguments.items():
            try:
                self.arguments[name] = Argument(name, value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{name}: {exc.message}", hint=exc.hint) from None

    @classmethod
    def identity(cls, fields: list[str]) -> ArgumentMapping:
        """Each input field passed on under its own name (the mapping when none is written)."""
        return cls({name: "${" + f"{ROOT}.{_quote_field(name)}" + "}" for name in fields})

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        context = {ROOT: data}
        out = {}
        for name, argument in self.arguments.items():
            value = argument.template.render(context)
            if value is not None:
                out[name] = value
        return out

    def sources(self) -> dict[str, Any]:
        """The mapping as written."""
        return {name: argument.source for name, argument in self.arguments.items()}

    def __iter__(self) -> Iterator[Argument]:
        return iter(self.arguments.values())


class ResultMapping:
    """A provider's ``result``: the capability's answer computed from the provider's result (``output``);
    members of an object that come out ``null`` are left out, as arguments are."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.template: Template = compile_template(source)
        for _, expression in self.template.expressions():
            for reference in expression.references():
                if reference.path[:1] != (OUTPUT,):
                    raise ConfigurationError(
                        f"'${{{expression.source}}}' reads {reference.path[0]!r}: a result mapping sees "
                        "only the provider's result, named output",
                        hint="name it output: ${output.id}, ${output.items[0].name}",
                    )

    def apply(self, result: Any) -> Any:
        value = self.template.render({OUTPUT: result})
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if v is not None}
        return value


def _quote_field(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
