"""The ``capabilities:`` section of ``toolbridge.yaml`` (pydantic, wire edge; docs/patterns.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CapabilitySettings", "ProviderSettings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderSettings(_Model):
    """One tool that can do the capability's work."""

    tool: str
    """The provider tool, ``connector.operation``."""
    arguments: dict[str, Any] | None = None
    """Provider argument → its value: ``${input.path}`` (a JMESPath expression over the capability's
    input, the pipelines' template syntax), a literal, or text with ``${…}`` in it. Omitted: the input's
    fields are passed on under their own names."""
    weight: Annotated[float, Field(gt=0)] = 1.0
    """Share of first tries under ``choice: weighted``."""
    result: Any = None
    """What the capability answers when this provider served it, in the same template syntax over the
    provider's result, named ``output``: ``{id: "${output.ts}", where: slack}``. Omitted: the provider's
    result as it is."""


class CapabilitySettings(_Model):
    """An operation agents call by name (tool ``capability.<name>``), served by the first provider able to."""

    description: str
    title: str | None = None
    input: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    """The capability's input JSON Schema (an object schema): what agents send."""
    output: dict[str, Any] | None = None
    """The JSON Schema of what the capability answers (its tool's output schema): each provider's result,
    after its ``result`` mapping, must fit it. Omitted: no output schema."""
    choice: Literal["ordered", "weighted", "round_robin"] = "ordered"
    """Which provider is tried first: the listed order, by ``weight``, or each in turn."""
    providers: Annotated[list[ProviderSettings], Field(min_length=1)]
