"""Principals and their scopes.

A scope is a tool-name pattern with an optional access suffix: ``github.*:read`` allows the read-only
tools of the github connector, ``workspace.*`` (or ``workspace.*:write``) allows all of them, ``*``
allows everything. Patterns are shell-style (``fnmatch``) over the full tool name.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from toolbridge.catalog import Tool
from toolbridge.errors import ConfigurationError, PermissionDenied

__all__ = ["Principal", "Scope"]

Access = Literal["read", "write"]
_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]-]+$")


@dataclass(frozen=True, slots=True)
class Scope:
    pattern: str
    access: Access = "write"
    """``read`` allows read-only tools; ``write`` allows read-only and writing tools."""

    @classmethod
    def parse(cls, text: str) -> Scope:
        pattern, _, access = text.strip().partition(":")
        if not pattern or not _PATTERN.fullmatch(pattern):
            raise ConfigurationError(
                f"scope {text!r} is not a tool pattern",
                hint="write scopes like 'github.*:read', 'workspace.*' or '*'",
            )
        if access not in ("", "read", "write"):
            raise ConfigurationError(
                f"scope {text!r} has access {access!r}", hint="the access suffix is ':read' or ':write'"
            )
        return cls(pattern, "read" if access == "read" else "write")

    def matches(self, tool: Tool) -> bool:
        return fnmatch.fnmatchcase(tool.name, self.pattern)

    def allows(self, tool: Tool) -> bool:
        return self.matches(tool) and (self.access == "write" or tool.annotations.read_only)

    def __str__(self) -> str:
        return f"{self.pattern}:{self.access}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: an agent with an API key, or the local process itself."""

    name: str
    scopes: tuple[Scope, ...]
    kind: Literal["agent", "local"] = "agent"
    key_id: str | None = None

    @classmethod
    def local(cls, name: str = "local") -> Principal:
        """The in-process caller of a library Hub: every scope."""
        return cls(name=name, scopes=(Scope("*", "write"),), kind="local")

    @classmethod
    def agent(cls, name: str, scopes: Iterable[str], *, key_id: str | None = None) -> Principal:
        return cls(name=name, scopes=tuple(Scope.parse(s) for s in scopes), kind="agent", key_id=key_id)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def is_operator(self) -> bool:
        """The local process, or an agent granted the bare ``*`` scope (write): it may see every
        connector's state and manage shared connections."""
        return self.kind == "local" or any(s.pattern == "*" and s.access == "write" for s in self.scopes)

    def can_see(self, tool: Tool) -> bool:
        return _sight(self.scopes)(tool)

    def sight(self) -> Callable[[Tool], bool]:
        """:meth:`can_see` as one function, its scopes compiled: for checking many tools (a search's
        "no good match" answer checks every tool of the catalog)."""
        return _sight(self.scopes)

    def authorize(self, tool: Tool) -> None:
        """Raise :class:`PermissionDenied` naming the scope that would allow ``tool``."""
        if self.can_see(tool):
            return
        access = "read" if tool.annotations.read_only else "write"
        needed = f"{tool.name}:{access}"
        partial = [str(s) for s in self.scopes if s.matches(tool)]
        why = (
            f"its scope {', '.join(partial)} allows only read-only tools and {tool.name!r} writes"
            if partial
            else f"no scope of {self.name!r} matches {tool.name!r}"
        )
        raise PermissionDenied(
            f"{self.id} may not call {tool.name!r}: {why}",
            missing_scope=needed,
            tool=tool.name,
            hint=f"ask an operator to grant the scope {needed!r} (or a pattern covering it) to {self.name!r}",
        )


@functools.lru_cache(maxsize=1024)
def _sight(scopes: tuple[Scope, ...]) -> Callable[[Tool], bool]:
    """Whether scopes allow a tool, by two regular expressions (the write scopes' patterns, the read
    scopes') instead of one ``fnmatch`` per scope and tool: the same answer as ``any(s.allows(tool))``."""
    writes = [s.pattern for s in scopes if s.access == "write"]
    if "*" in writes:
        return lambda tool: True
    write, read = _union(writes), _union([s.pattern for s in scopes if s.access == "read"])

    def sees(tool: Tool) -> bool:
        name = tool.name
        return write(name) is not None or (tool.annotations.read_only and read(name) is not None)

    return sees


def _union(patterns: list[str]) -> Callable[[str], re.Match[str] | None]:
    if not patterns:
        return lambda name: None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match
