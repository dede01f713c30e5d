"""Load-time checks of capabilities against the catalog: every provider tool exists, every mapping reads
input fields the capability has and sets arguments the tool takes, with types that can match.

Each problem carries the location it was declared at (``capabilities.store_file.providers.0.tool``), so
the configuration layer can report it with the file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from toolbridge._suggest import close_matches
from toolbridge.catalog import Tool
from toolbridge.errors import did_you_mean
from toolbridge.router._mapping import ROOT, Argument, Path
from toolbridge.router._model import Capability, Provider

__all__ = ["Problem", "check_capability"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    message: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class _Catalog:
    find: Callable[[str], Tool | None]
    names: list[str]
    connectors: frozenset[str]
    complete: bool
    """False before the hub starts: connectors that learn their tools on start (MCP) have none yet."""


def check_capability(
    capability: Capability,
    find: Callable[[str], Tool | None],
    names: list[str],
    *,
    connectors: frozenset[str],
    router: str,
    complete: bool,
) -> list[Problem]:
    """Every problem of ``capability`` (empty when it is sound)."""
    catalog = _Catalog(find, names, connectors, complete)
    problems = []
    seen: set[str] = set()
    for i, provider in enumerate(capability.providers):
        where = (*capability.loc, "providers", i)
        if provider.tool in seen:  # its second try would share the first's key, and do the same
            problems.append(Problem((*where, "tool"), f"{provider.tool!r} is listed twice", "list it once"))
        seen.add(provider.tool)
        problems += _check_provider(capability, provider, where, catalog, router)
    return problems


def _check_provider(
    capability: Capability, provider: Provider, where: Loc, catalog: _Catalog, router: str
) -> list[Problem]:
    connector = provider.tool.partition(".")[0]
    if connector == router:
        return [Problem((*where, "tool"), f"{provider.tool!r} is a capability", "a provider must be a tool")]
    tool = catalog.find(provider.tool)
    if tool is None:
        return _missing(provider.tool, connector, (*where, "tool"), catalog)
    at = (*where, "arguments") if provider.arguments is not None else where
    mapping = capability.mapping(provider)
    problems = []
    for argument in mapping:
        problems += _check_argument(capability, tool, argument, (*at, argument.name))
    required = set(_schema_required(tool.input_schema))
    for argument in mapping:
        optional = _optional_source(capability, argument) if argument.name in required else None
        if optional is not None:
            problems.append(
                Problem(
                    (*at, argument.name),
                    f"{tool.name!r} requires {argument.name!r}, but it comes from the optional input field "
                    f"{optional!r}: a call without it would fail at the provider",
                    f"make {optional!r} required in the capability's input, or give a default: "
                    + "${"
                    + f"input.{optional} || '...'"
                    + "}",
                )
            )
    missing = sorted(required - {a.name for a in mapping})
    if missing:
        problems.append(
            Problem(
                at,
                f"does not set {', '.join(repr(m) for m in missing)}, required by {tool.name!r}",
                f"map each from the capability's input, e.g. {missing[0]}: " + "${input.<field>}",
            )
        )
    return problems


def _optional_source(capability: Capability, argument: Argument) -> str | None:
    """The first optional field on the input path ``argument`` copies (``${input.a.b}``), if any."""
    path = argument.direct_path()
    if path is None or path[0] != ROOT:
        return None
    node: Mapping[str, Any] = capability.input_schema
    for depth, name in enumerate(path[1:]):
        if _property(node, name) is None:
            return None  # no such field (reported on its own) or an open object
        if name not in list(_schema_required(node)):
            return ".".join(path[1 : depth + 2])
        node = _resolve(capability.input_schema, _property(node, name) or {})
    return None


def _missing(name: str, connector: str, where: Loc, catalog: _Catalog) -> list[Problem]:
    if connector not in catalog.connectors:
        hint = did_you_mean(close_matches(connector, catalog.connectors))
        return [Problem(where, f"no connector is named {connector!r} (in tool {name!r})", hint)]
    known = [n for n in catalog.names if n.startswith(connector + ".")]
    if not known and not catalog.complete:
        return []  # the connector lists its tools once started: checked again then
    hint = did_you_mean(close_matches(name, catalog.names, cutoff=0.75))
    return [Problem(where, f"no tool is named {name!r}", hint or "'toolbridge tools list' shows them")]


def _check_argument(capability: Capability, tool: Tool, argument: Argument, where: Loc) -> list[Problem]:
    problems = []
    target = _property(tool.input_schema, argument.name)
    if target is None and tool.input_schema.get("additionalProperties") is False:
        choices = sorted(tool.input_schema.get("properties", {}))
        hint = (
            did_you_mean(close_matches(argument.name, choices)) or f"it takes: {', '.join(choices) or 'none'}"
        )
        problems.append(Problem(where, f"{tool.name!r} takes no argument {argument.name!r}", hint))
    for path in argument.reads():
        problem = (
            _unknown_root(path) if path[0] != ROOT else _missing_input(capability.input_schema, path[1:])
        )
        if problem is not None:
            problems.append(Problem(where, f"{argument.source!r} reads {problem}"))
    if target is not None and not problems:
        problems += _type_mismatch(capability, tool, argument, target, where)
    return problems


def _unknown_root(path: Path) -> str:
    field = ".".join(path)
    return f"{field!r}, but expressions see the capability's input as 'input' (write '{ROOT}.{field}')"


def _missing_input(schema: Mapping[str, Any], path: Path) -> str | None:
    """What is wrong with reading ``path`` from input valid against ``schema`` (None: nothing)."""
    node = schema
    for depth, name in enumerate(path):
        properties = node.get("properties")
        if not isinstance(properties, Mapping):
            return None  # an open object: anything may be there
        if name not in properties:
            field = ".".join(path[: depth + 1])
            hint = did_you_mean(close_matches(name, properties))
            listing = f"it has: {', '.join(sorted(properties)) or 'no fields'}"
            return (
                f"the input field {field!r}, which the capability's input does not have ({hint or listing})"
            )
        node = _resolve(schema, properties[name])
    return None


def _type_mismatch(
    capability: Capability, tool: Tool, argument: Argument, target: Mapping[str, Any], where: Loc
) -> list[Problem]:
    wanted = _types(_resolve(tool.input_schema, target))
    path = argument.direct_path()
    if path is not None and path[0] == ROOT:
        source = _types(_at(capability.input_schema, path[1:]))
        what = f"the input field {'.'.join(path[1:])!r} is {_or(source)}"
    else:
        constant = argument.constant_type()
        source = {constant} if constant else set()
        what = f"the constant {argument.source!r} is {_or(source)}"
    if not source or not wanted or _compatible(source, wanted):
        return []
    return [
        Problem(
            where,
            f"type mismatch: {what}, but {tool.name!r} takes {argument.name!r} as {_or(wanted)}",
            "change the capability's input type or map the argument from another field",
        )
    ]


def _compatible(source: set[str], wanted: set[str]) -> bool:
    if "integer" in source and "number" in wanted:
        return True
    return bool(source & wanted)


def _types(schema: Mapping[str, Any] | None) -> set[str]:
    kind = (schema or {}).get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def _or(types: set[str]) -> str:
    return " or ".join(sorted(types)) or "of any type"


def _property(schema: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    properties = schema.get("properties")
    found = properties.get(name) if isinstance(properties, Mapping) else None
    return found if isinstance(found, Mapping) else None


def _at(schema: Mapping[str, Any], path: Path) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for name in path:
        node = _property(_resolve(schema, node or {}), name)
        if node is None:
            return None
    return _resolve(schema, node or {})


def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/Thing``), a few levels at most."""
    for _ in range(8):
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping):
            return node
        node = target
    return node


def _schema_required(schema: Mapping[str, Any]) -> Iterator[str]:
    required = schema.get("required", [])
    if isinstance(required, list):
        yield from (r for r in required if isinstance(r, str))
