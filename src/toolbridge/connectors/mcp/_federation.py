"""Prompts and resources of an upstream server, federated beside its tools.

Prompts are renamed like tools (``connector.prompt``); resources keep their URIs (tool results refer to
them, and those are passed through unchanged), and a read goes to the connector that listed the URI or
a template or a resource of the same scheme.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from toolbridge.connectors.mcp._naming import catalog_names
from toolbridge.connectors.mcp._session import Session

__all__ = ["Extras", "discover_extras"]


@dataclass(frozen=True, slots=True)
class Extras:
    """What a server offers besides tools, as wire objects (prompt names already namespaced)."""

    prompts: Mapping[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """Catalog name → (upstream name, ``Prompt`` object)."""
    resources: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """URI → ``Resource`` object."""
    templates: tuple[dict[str, Any], ...] = ()

    def owns(self, uri: str) -> bool:
        """Whether a read of ``uri`` belongs to this server (listed, or the scheme of what it lists)."""
        if uri in self.resources:
            return True
        scheme = urlsplit(uri).scheme
        listed = [*self.resources, *(str(t.get("uriTemplate", "")) for t in self.templates)]
        return bool(scheme) and any(urlsplit(u).scheme == scheme for u in listed)


async def discover_extras(session: Session, connector: str) -> Extras:
    """List prompts, resources and resource templates the server says it has (its capabilities)."""
    prompts: dict[str, tuple[str, dict[str, Any]]] = {}
    if "prompts" in session.capabilities:
        listed = await session.list_all("prompts/list", "prompts")
        by_upstream = {str(p["name"]): p for p in listed if isinstance(p.get("name"), str)}
        for upstream, name in catalog_names(connector, by_upstream).items():
            prompts[name] = (upstream, {**by_upstream[upstream], "name": name})
    resources: dict[str, dict[str, Any]] = {}
    templates: tuple[dict[str, Any], ...] = ()
    if "resources" in session.capabilities:
        for item in await session.list_all("resources/list", "resources"):
            if isinstance(item.get("uri"), str):
                resources[item["uri"]] = item
        templates = tuple(await session.list_all("resources/templates/list", "resourceTemplates"))
    return Extras(prompts, resources, templates)
