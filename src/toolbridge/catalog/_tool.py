"""The Tool: one operation an agent can invoke."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from toolbridge.errors import ConfigurationError, ToolQuarantined

__all__ = [
    "MCP_NAME_META_KEY",
    "MCP_RESULT_META_KEY",
    "NAME_PATTERN",
    "QUARANTINE_META_KEY",
    "Tool",
    "ToolAnnotations",
    "check_tool_name",
    "quarantine_error",
]

NAME_PATTERN = re.compile(r"^[a-z0-9_.-]{1,64}$")
QUARANTINE_META_KEY = "toolbridge/quarantine"
"""``Tool.meta`` key: the tool is hidden and refused; its value maps ``message``, ``diff`` and ``flags``."""
MCP_RESULT_META_KEY = "toolbridge/mcp-result"
MCP_NAME_META_KEY = "toolbridge/mcp-name"
"""``Tool.meta`` key: the name MCP clients know the tool by, when not its catalog name (an upstream MCP
server mounted without its prefix keeps its own names on the MCP surface)."""
"""``Tool.meta`` key: the tool's results are MCP ``CallToolResult`` objects, passed through to MCP clients."""
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def check_tool_name(name: str) -> str:
    """Return ``name`` if it is a valid tool name (``connector.operation``, ≤ 64 of ``[a-z0-9_.-]``)."""
    if not NAME_PATTERN.fullmatch(name):
        problem = "is longer than 64 characters" if len(name) > 64 else "has characters outside [a-z0-9_.-]"
        raise ConfigurationError(
            f"tool name {name!r} {problem}",
            hint="use lower-case letters, digits, '_', '.' and '-', at most 64 characters, "
            "as 'connector.operation'",
        )
    if "." not in name.strip("."):
        raise ConfigurationError(
            f"tool name {name!r} has no connector prefix",
            hint="name tools 'connector.operation', for example 'notes.add'",
        )
    return name


@dataclass(frozen=True, slots=True)
class ToolAnnotations:
    """Behaviour hints decided by toolbridge's connector definition, never trusted from an upstream."""

    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = True

    def __post_init__(self) -> None:
        if self.read_only and self.destructive:
            raise ConfigurationError(
                "a tool cannot be both read_only and destructive",
                hint="drop one of the two annotations",
            )


@dataclass(frozen=True, slots=True, eq=False)
class Tool:
    """A tool in the catalog. ``input_schema`` is a JSON Schema object (treated as immutable)."""

    name: str
    connector: str
    description: str
    input_schema: Mapping[str, Any]
    annotations: ToolAnnotations = field(default_factory=ToolAnnotations)
    title: str | None = None
    output_schema: Mapping[str, Any] | None = None
    cost: int = 1
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: tuple[str, ...] = ()
    """Groups the tool belongs to (an OpenAPI operation's ``tags``): a search can keep only some."""

    def __post_init__(self) -> None:
        check_tool_name(self.name)
        if not self.name.startswith(self.connector + "."):
            raise ConfigurationError(
                f"tool {self.name!r} does not start with its connector name {self.connector!r}",
                hint=f"name it '{self.connector}.<operation>'",
            )
        if self.input_schema.get("type") != "object":
            raise ConfigurationError(
                f"tool {self.name!r}: input schema must have type 'object'",
                hint="wrap the parameters in an object schema",
            )

    @property
    def operation(self) -> str:
        return self.name[len(self.connector) + 1 :]

    @property
    def writes(self) -> bool:
        """True when calling the tool may change something (it is not read-only)."""
        return not self.annotations.read_only


def quarantine_error(tool: Tool) -> ToolQuarantined:
    """The error refusing a call to a quarantined tool (see :data:`QUARANTINE_META_KEY`)."""
    notice = tool.meta.get(QUARANTINE_META_KEY) or {}
    return ToolQuarantined(
        str(notice.get("message") or f"{tool.name!r} is quarantined"),
        diff=notice.get("diff"),
        flags=notice.get("flags") or (),
        tool=tool.name,
        hint=f"an operator must review it and run 'toolbridge tools approve {tool.name}'",
    )
