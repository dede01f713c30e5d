"""Capabilities as values: what an operator declares, after parsing (frozen; no pydantic here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from toolbridge.errors import ConfigurationError
from toolbridge.router._mapping import ArgumentMapping, ResultMapping

__all__ = ["Capability", "Choice", "Provider"]

Choice = Literal["ordered", "weighted", "round_robin"]
"""How the first provider of a call is picked: the listed order, by weight, or in turn. The others follow
as fallbacks (in listed order for ``round_robin``, by weight for ``weighted``)."""


@dataclass(frozen=True, slots=True)
class Provider:
    """One tool that can do a capability's work, with the mapping from the capability's input."""

    tool: str
    arguments: ArgumentMapping | None = None
    """None: the capability's input fields are passed on under their own names."""
    weight: float = 1.0
    result: ResultMapping | None = None
    """How its result becomes the capability's (None: as it is)."""

    def __post_init__(self) -> None:
        if not self.weight > 0:
            raise ConfigurationError(
                f"provider {self.tool!r} has weight {self.weight!r}", hint="weights are numbers above 0"
            )


@dataclass(frozen=True, slots=True)
class Capability:
    """An operation agents ask for by name; the operator decides which tools do it, in which order."""

    name: str
    """The capability's own name (``store_file``); its tool is ``<router>.<name>``."""
    description: str
    input_schema: Mapping[str, Any]
    providers: tuple[Provider, ...]
    choice: Choice = "ordered"
    title: str | None = None
    output_schema: Mapping[str, Any] | None = None
    """What the capability answers, whichever provider served it (None: not declared)."""
    loc: tuple[str | int, ...] = field(default=(), compare=False)
    """Where it was declared (``("capabilities", "store_file")``), to locate load-time errors."""

    def __post_init__(self) -> None:
        if not self.providers:
            raise ConfigurationError(
                f"capability {self.name!r} has no providers", hint="list at least one tool under providers"
            )
        if self.input_schema.get("type") != "object":
            raise ConfigurationError(
                f"capability {self.name!r}: its input schema must have type 'object'",
                hint="declare input: {type: object, properties: {...}}",
            )
        object.__setattr__(self, "input_schema", MappingProxyType(dict(self.input_schema)))
        if self.output_schema is not None:
            if self.output_schema.get("type") != "object":
                raise ConfigurationError(
                    f"capability {self.name!r}: its output schema must have type 'object'",
                    hint="declare output: {type: object, properties: {...}} (MCP requires an object)",
                )
            object.__setattr__(self, "output_schema", MappingProxyType(dict(self.output_schema)))

    def mapping(self, provider: Provider) -> ArgumentMapping:
        """``provider``'s mapping (the identity over the input's fields when it declares none)."""
        if provider.arguments is not None:
            return provider.arguments
        return ArgumentMapping.identity(sorted(self.input_schema.get("properties", {})))
