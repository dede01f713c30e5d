"""Capabilities as documents (REST, CLI) and a dry run of one call's argument mappings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolbridge.audit import canonical_json
from toolbridge.errors import ToolbridgeError
from toolbridge.router._router import Router

if TYPE_CHECKING:
    from toolbridge.hub import Hub

__all__ = ["Planned", "capability_documents", "find_router", "plan"]


def find_router(hub: Hub) -> Router | None:
    """The hub's router, if capabilities are configured."""
    for name in hub.connector_names():
        connector = hub.connector(name)
        if isinstance(connector, Router):
            return connector
    return None


def capability_documents(hub: Hub, router: Router, tools: list[str], *, detail: bool) -> list[dict[str, Any]]:
    """One document per capability tool in ``tools``; ``detail`` (operators) adds the providers, their
    mappings and their breakers' state."""
    out = []
    for tool in tools:
        capability = router.capability(tool)
        entry = hub.catalog.get(tool)
        doc: dict[str, Any] = {
            "name": capability.name,
            "tool": tool,
            "description": capability.description,
            "choice": capability.choice,
            "read_only": entry.annotations.read_only,
            "input_schema": dict(capability.input_schema),
        }
        if capability.output_schema is not None:
            doc["output_schema"] = dict(capability.output_schema)
        if detail:
            doc["providers"] = [
                {
                    "tool": p.tool,
                    "weight": p.weight,
                    "arguments": capability.mapping(p).sources(),
                    **({"result": p.result.source} if p.result is not None else {}),
                    "breaker": hub.resilience.breaker_state(p.tool.partition(".")[0]),
                }
                for p in capability.providers
            ]
        out.append(doc)
    return out


@dataclass(frozen=True, slots=True)
class Planned:
    """What one provider would be sent, and whether its input schema accepts it."""

    tool: str
    arguments: Mapping[str, Any]
    problem: str | None


def plan(hub: Hub, router: Router, tool: str, arguments: Mapping[str, Any]) -> list[Planned]:
    """Each provider's arguments for a call of ``tool`` with ``arguments``, checked against the provider's
    schema: nothing is called."""
    capability = router.capability(tool)
    hub.catalog.validate(
        hub.catalog.get(tool),
        arguments,
        size=len(canonical_json(arguments)),
        max_bytes=hub.limits.max_argument_bytes,
    )
    out = []
    for provider in capability.providers:
        mapped = capability.mapping(provider).apply(arguments)
        problem = None
        try:
            target = hub.catalog.get(provider.tool)
            size = len(canonical_json(mapped))
            hub.catalog.validate(target, mapped, size=size, max_bytes=hub.limits.max_argument_bytes)
        except ToolbridgeError as exc:
            problem = exc.message
        out.append(Planned(provider.tool, mapped, problem))
    return out
