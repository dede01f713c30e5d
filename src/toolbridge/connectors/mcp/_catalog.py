"""An upstream's tools as catalog tools: listed, renamed, pinned, quarantined when they change.

``pins`` stores approved definitions; without it every tool is trusted as listed. With it, a tool is
visible once approved (``approval="all-on-first-connect"`` approves what the first connection lists) and
is quarantined when its definition later differs from the approved one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx2
from mcp.shared.inbound import x_mcp_header_map

from toolbridge._redact import redact_value
from toolbridge._suggest import close_matches
from toolbridge.catalog import MCP_NAME_META_KEY, MCP_RESULT_META_KEY, QUARANTINE_META_KEY, Tool
from toolbridge.connectors.mcp._answers import invalid_headers, object_schema
from toolbridge.connectors.mcp._config import Approval, ToolRules
from toolbridge.connectors.mcp._naming import catalog_names
from toolbridge.connectors.mcp._pins import (
    Pin,
    PinStore,
    State,
    ToolReview,
    definition_diff,
    definition_digest,
    instruction_flags,
    pinned_definition,
    quarantine_message,
)
from toolbridge.connectors.mcp._session import Session
from toolbridge.errors import ConfigurationError, ToolNotFound

__all__ = ["Entry", "ToolCatalog"]


@dataclass(frozen=True, slots=True)
class Entry:
    upstream: str
    tool: Tool
    review: ToolReview
    param_headers: Mapping[tuple[str, ...], str] = dataclasses.field(default_factory=dict)
    """Argument path → ``Mcp-Param-*`` token, from the upstream schema's ``x-mcp-header`` annotations."""


class ToolCatalog:
    """The tools of one connector's upstream, with their approval state (``changed()`` on any change)."""

    def __init__(
        self,
        name: str,
        *,
        namespace: str,
        rules: ToolRules,
        pins: PinStore | None,
        approval: Approval,
        changed: Callable[[], None],
    ) -> None:
        self._name = name
        self._namespace = namespace
        self._rules = rules
        self._store = pins
        self._approval: Approval = approval
        self._changed = changed
        self._entries: dict[str, Entry] = {}
        self._mcp_names: dict[str, str] = {}
        """Catalog name → the name MCP clients see (only when mounted unprefixed)."""
        self._pins: dict[str, Pin] = {}

    async def load_pins(self) -> None:
        if self._store is not None:
            self._pins = await self._store.load(self._name)

    def tools(self) -> Sequence[Tool]:
        return [entry.tool for entry in self._entries.values()]

    def review(self) -> list[ToolReview]:
        """Every upstream tool with its approval state, flags and (when changed) the diff."""
        return [entry.review for entry in sorted(self._entries.values(), key=lambda e: e.tool.name)]

    def entry(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is None:
            raise ToolNotFound(name, suggestions=close_matches(name, self._entries))
        return entry

    async def discover(self, session: Session, auth: httpx2.Auth | None, secrets: Sequence[str] = ()) -> None:
        """List the tools again (signed by ``auth``, the connector's default connection). ``secrets``
        (every form of what the upstream was sent) are masked in the definitions before anything is pinned
        or served: an upstream may echo its request headers into a description or a schema."""
        listed = redact_value(await session.list_all("tools/list", "tools", auth=auth), secrets)
        upstream = {str(t["name"]): t for t in listed if isinstance(t.get("name"), str)}
        for bad in [n for n, t in upstream.items() if session.modern and invalid_headers(n, t)]:
            del upstream[bad]  # the stateless era: clients MUST leave such tools out
        names = catalog_names(self._name, upstream)
        self._mcp_names = (
            {} if self._namespace else {names[u]: n for u, n in catalog_names("", upstream).items()}
        )
        definitions = {
            names[u]: pinned_definition(t) for u, t in upstream.items() if not self._rules.hidden(u)
        }
        if self._store is not None and self._approval == "all-on-first-connect":
            fresh = {n: d for n, d in definitions.items() if n not in self._pins}
            self._pins.update(await self._store.approve(self._name, fresh, by="config:all-on-first-connect"))
        by_name = {names[u]: u for u in upstream}
        entries = {n: self._build(n, by_name[n], upstream[by_name[n]], d) for n, d in definitions.items()}
        self._set_entries(entries)

    def _build(
        self, name: str, upstream: str, listed: Mapping[str, Any], definition: Mapping[str, Any]
    ) -> Entry:
        digest = definition_digest(definition)
        pin = self._pins.get(name)
        state: State = "approved"
        diff = None
        if self._store is not None:
            if pin is None:
                state = "pending"
            elif pin.digest != digest:
                state, diff = "changed", definition_diff(pin.definition, definition)
        flags = tuple(instruction_flags(definition))
        review = ToolReview(
            name, upstream, state, digest, flags, diff, pin.approved_by if pin else None, definition
        )
        meta: dict[str, Any] = {
            MCP_RESULT_META_KEY: True,
            "toolbridge/upstream": {
                "name": upstream,
                "annotations": listed.get("annotations"),
                "execution": listed.get("execution"),
            },
        }
        if name in self._mcp_names:  # mounted unprefixed: MCP clients know it by the upstream's name
            meta[MCP_NAME_META_KEY] = self._mcp_names[name]
        if state != "approved":
            meta[QUARANTINE_META_KEY] = {"message": quarantine_message(review), "diff": diff, "flags": flags}
        tool = Tool(
            name=name,
            connector=self._name,
            description=str(listed.get("description") or upstream),
            input_schema=object_schema(listed.get("inputSchema")),
            annotations=self._rules.annotations(upstream, listed.get("annotations")),
            title=listed["title"] if isinstance(listed.get("title"), str) else None,
            output_schema=listed["outputSchema"] if isinstance(listed.get("outputSchema"), dict) else None,
            meta=MappingProxyType(meta),
        )
        return Entry(upstream, tool, review, MappingProxyType(x_mcp_header_map(listed.get("inputSchema"))))

    def _set_entries(self, entries: dict[str, Entry]) -> None:
        before = {n: e.review.digest + e.review.state for n, e in self._entries.items()}
        self._entries = entries
        after = {n: e.review.digest + e.review.state for n, e in entries.items()}
        if before != after:
            self._changed()

    async def approve(self, names: Iterable[str] | None = None, *, by: str) -> list[str]:
        """Approve the current definitions of ``names`` (None: every tool not approved yet)."""
        if self._store is None:
            raise ConfigurationError(
                f"connector {self._name!r} pins nothing", hint="give it a pin store (a hub database)"
            )
        if names is None:
            chosen = [n for n, e in self._entries.items() if e.review.state != "approved"]
        else:
            chosen = list(names)
            for name in chosen:
                self.entry(name)
        definitions = {n: self._entries[n].review.definition for n in chosen}
        self._pins.update(await self._store.approve(self._name, definitions, by=by))
        self._set_entries(
            {n: self._build(n, e.upstream, _listed(e), e.review.definition) for n, e in self._entries.items()}
        )
        return sorted(chosen)


def _listed(entry: Entry) -> dict[str, Any]:
    upstream = entry.tool.meta.get("toolbridge/upstream", {})
    return {
        "annotations": upstream.get("annotations"),
        "execution": upstream.get("execution"),
        **entry.review.definition,
    }
