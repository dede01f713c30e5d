"""A compact copy of a tool's input schema, for reading: what an agent needs to build a call, smaller.

Large API schemas repeat whole sub-schemas (the same ``message`` object under ten properties) and
carry long descriptions and enums at every level; read whole, one OpenAI operation is 170 KB. The
compact copy, in this order and only as far as needed to fit ``budget`` bytes:

1. sub-schemas that occur more than once are stored once under ``$defs`` and referenced (``$ref``);
2. descriptions are cut to :data:`DESCRIPTION_CHARS` and enums over :data:`ENUM_VALUES` values are
   summarised (the first values kept, the count in ``x-enum-count``);
3. descriptions below the top-level properties are dropped;
4. the schema is shown as deep as fits, shallowest parts first and, at one depth, the smallest first:
   a part left out becomes a stub that names its exact path (``property='input.1.items'``), to ask
   for it on its own with :func:`argument_schema`, compacted the same way (with many small parts,
   stubs without descriptions, for smaller parts too);
5. hundreds of small top-level arguments (or union branches): the last are left out, the required
   ones kept, and a note names the first and last of those left out.

**Paths.** A path names a part of a tool's arguments with dotted segments, each of which is, in
this order: a property's name; ``items`` (an array's items) or ``additionalProperties``; the number
of a union's branch (``anyOf``, else ``oneOf``, else ``allOf``; from 0); or else a name looked up in
every branch of the union, the one branch that has it or all of those that do (as an ``anyOf``).
``$ref`` is followed at each step. So for OpenAI's ``input`` (a string or a list of items),
``input.items`` is the list's items and ``input.1`` the list itself. The stubs name exact paths.

A part (:func:`argument_schema`) comes with the ``$defs`` its ``$ref`` point to; from step 4 the
definitions are written out in place, and a definition that holds itself (a tree of nodes) is a stub where it
recurs. Validation always uses the tool's own schema; the compact copy is only what the agent reads.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "DESCRIPTION_CHARS",
    "ENUM_VALUES",
    "argument_schema",
    "compact_schema",
    "plain_json",
    "sub_schema",
]

DESCRIPTION_CHARS = 200
ENUM_VALUES = 20
_SHARED_MIN_BYTES = 200  # smaller repeats cost less inline than as a $ref
_STUB_SAVING = 150  # a part is left out only if that saves more than this over its stub
_Visit = Callable[[dict[str, Any], int], dict[str, Any]]
_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DATA = frozenset({"enum", "const", "default", "example", "examples", "required"})
_DEFS = ("$defs", "definitions")
_BRANCHES = ("anyOf", "oneOf", "allOf")
_NAMED = ("items", "additionalProperties")
_MAX_HOPS = 64  # $ref followed, or unions looked through, in one step: more is a loop
_TRIALS = 1_000  # parts tried for one view at most (2,000 big arguments: 0.8 s)


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def compact_schema(
    schema: Mapping[str, Any], *, budget: int, path: str = "", drill: bool = True
) -> tuple[dict[str, Any], bool]:
    """``(schema, changed)``: ``schema`` itself (as plain data) when it fits ``budget`` bytes, else the
    compact copy described in the module docstring; ``changed`` says whether anything was left out.
    ``path`` is where ``schema`` sits in a tool's arguments (``input.items``), for the stubs' pointers;
    without ``drill`` the stubs point at the whole definition instead (an output schema)."""
    plain = plain_json(schema)
    if _size(plain) <= budget:
        return plain, False
    steps: list[Callable[[Any], Any]] = [_shared, _trimmed, _top_descriptions_only]
    for step in steps:
        plain = step(plain)
        if _size(plain) <= budget:
            return plain, True
    tree = _top_descriptions_only(_trimmed(_written_out(plain_json(schema), path, drill)))
    folded = _Folding(tree, path, budget, drill).result()
    if _size(folded) > budget:  # many small parts (forty enums): smaller ones left out, bare stubs
        folded = min(folded, _Folding(tree, path, budget, drill, bare=True).result(), key=_size)
    if _size(folded) > budget:  # hundreds of small arguments (Twilio's Parameter1.Name …)
        folded = _fewer(folded, budget, path, drill)
    return folded, True


def sub_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The schema of the part of the arguments at ``path`` (see the module docstring), or None if there
    is none; its ``$ref`` still point into ``schema`` (:func:`argument_schema` carries them)."""
    return _follow(schema, schema, path.split("."))


def argument_schema(schema: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    """:func:`sub_schema` made whole: with the ``$defs`` (or ``definitions``) its ``$ref`` name, and
    other references into ``schema`` written out."""
    node = _deref(sub_schema(schema, path), schema)
    if node is None:
        return None
    part: dict[str, Any] = _inlined(plain_json(node), schema, ())
    for key in _DEFS:
        part.pop(key, None)
    carried: dict[str, dict[str, Any]] = {}
    pending = [part]
    while pending:
        for ref in _refs(pending.pop()):
            key, _, name = ref[2:].partition("/")
            target = _target(schema, ref)
            if key in _DEFS and "/" not in name and name not in carried.get(key, {}) and target is not None:
                definition = _inlined(plain_json(target), schema, (ref,))
                carried.setdefault(key, {})[name] = definition
                pending.append(definition)
    return part | carried


def plain_json(value: Any) -> Any:
    """A deep copy of a JSON value made of dicts and lists (schemas may hold read-only mappings)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


# paths


def _follow(node: Any, root: Mapping[str, Any], segments: list[str]) -> Mapping[str, Any] | None:
    """The part of ``node`` at ``segments``; a property name holding dots may span several of them."""
    if not segments:
        return node if isinstance(node, Mapping) else None
    for end in range(1, len(segments) + 1):
        child = _step(node, ".".join(segments[:end]), root, 0)
        found = None if child is None else _follow(child, root, segments[end:])
        if found is not None:
            return found
    return None


def _step(node: Any, name: str, root: Mapping[str, Any], hops: int) -> Mapping[str, Any] | None:
    """The part of ``node`` one path segment ``name`` names (the rules of the module docstring)."""
    node = _deref(node, root)
    if node is None or hops > _MAX_HOPS:
        return None
    props = node.get("properties")
    if isinstance(props, Mapping) and isinstance(props.get(name), Mapping):
        return props[name]  # type: ignore[no-any-return]
    if name in _NAMED and isinstance(node.get(name), Mapping):
        return node[name]  # type: ignore[no-any-return]
    branches = _branches(node)
    if name.isdigit() and int(name) < len(branches) and isinstance(branches[int(name)], Mapping):
        return branches[int(name)]  # type: ignore[no-any-return]
    found: list[Mapping[str, Any]] = []
    for key in _BRANCHES:
        for branch in node.get(key) if isinstance(node.get(key), list) else ():
            match = _step(branch, name, root, hops + 1)
            if match is not None and match not in found:
                found.append(match)
    if len(found) > 1:
        return {"anyOf": found}
    return found[0] if found else None


def _branches(node: Mapping[str, Any]) -> list[Any]:
    """The union whose branches a number names: ``anyOf``, else ``oneOf``, else ``allOf``."""
    for key in _BRANCHES:
        if isinstance(node.get(key), list):
            return node[key]  # type: ignore[no-any-return]
    return []


def _deref(node: Any, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``node`` with its ``$ref`` (and theirs) replaced by what they name, its own keywords kept."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str) and node["$ref"] not in seen:
        target = _target(root, node["$ref"])
        if target is None:
            break
        seen.add(node["$ref"])
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node if isinstance(node, Mapping) else None


def _target(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    """What a local ``$ref`` (``#/$defs/Customer``, any JSON pointer) names in ``root``, if anything."""
    if not ref.startswith("#"):
        return None
    node: Any = root
    for token in ref[1:].split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node if isinstance(node, Mapping) else None


def _refs(value: Any) -> Iterator[str]:
    """Every ``$ref`` in a schema."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            elif key not in _DATA:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _inlined(value: Any, root: Mapping[str, Any], stack: tuple[str, ...]) -> Any:
    """``value`` with its references into ``root`` other than its definitions written out (a part's
    ``#/properties/...`` would point nowhere); one that recurs is left as it is."""
    if isinstance(value, list):
        return [_inlined(v, root, stack) for v in value]
    if not isinstance(value, dict):
        return value
    ref = value.get("$ref")
    if isinstance(ref, str) and not ref.startswith(("#/$defs/", "#/definitions/")) and ref not in stack:
        target = _target(root, ref)
        if target is not None:
            rest = {k: v for k, v in value.items() if k != "$ref"}
            return _inlined({**plain_json(target), **rest}, root, (*stack, ref))
    return {k: v if k in _DATA else _inlined(v, root, stack) for k, v in value.items()}


def _join(path: str | None, segment: str) -> str | None:
    if path is None:
        return None
    return f"{path}.{segment}" if path else segment


def _slots(node: dict[str, Any]) -> Iterator[tuple[str, str | int | None, dict[str, Any], str]]:
    """``node``'s parts a path segment names: (keyword, name or index under it, part, segment)."""
    props = node.get("properties")
    names = props if isinstance(props, dict) else {}
    for name, sub in names.items():
        if isinstance(sub, dict):
            yield "properties", name, sub, name
    for key in _NAMED:
        if isinstance(node.get(key), dict) and key not in names:
            yield key, None, node[key], key
    union = next((k for k in _BRANCHES if isinstance(node.get(k), list)), None)
    for i, branch in enumerate(node[union] if union else ()):
        if isinstance(branch, dict) and str(i) not in names:
            yield union or "", i, branch, str(i)


def _replaced(node: dict[str, Any], fn: Callable[[dict[str, Any], str], Any]) -> dict[str, Any]:
    """``node`` with each part a path segment names passed through ``fn(part, segment)``."""
    out = dict(node)
    for key, slot, sub, segment in _slots(node):
        if slot is None:
            out[key] = fn(sub, segment)
        elif isinstance(slot, int):
            out[key] = [*out[key][:slot], fn(sub, segment), *out[key][slot + 1 :]]
        else:
            out[key] = {**out[key], slot: fn(sub, segment)}
    return out


# stubs


def _written_out(schema: dict[str, Any], path: str, drill: bool) -> dict[str, Any]:
    """``schema`` (with its ``$defs``) with every ``$ref`` replaced by what it names, so that each part
    has one path; a definition met again inside itself becomes a stub naming the path where it is."""
    defs = {key: schema.get(key) for key in _DEFS if isinstance(schema.get(key), dict)}
    body = {k: v for k, v in schema.items() if k not in _DEFS}
    out: dict[str, Any] = _out(body, {**body, **defs}, path if drill else None, ())
    return out


def _out(node: Any, root: dict[str, Any], path: str | None, stack: tuple[str, ...]) -> Any:
    """:func:`_written_out` of one part (``path`` None: a part no path names, or no drilling)."""
    if isinstance(node, list):
        return [_out(v, root, None, stack) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    target = _target(root, ref) if isinstance(ref, str) else None
    if isinstance(ref, str) and target is not None:
        rest = {k: v for k, v in node.items() if k != "$ref"}
        if ref in stack:
            return _recurring(ref, target, rest, path)
        return _out({**target, **rest}, root, path, (*stack, ref))
    out = _replaced(node, lambda sub, segment: _out(sub, root, _join(path, segment), stack))
    named = {key for key, *_ in _slots(node)}
    for key, value in node.items():
        if key not in _DATA and key not in named:
            out[key] = _out(value, root, None, stack)
    return {k: v for k, v in out.items() if k not in _DEFS}


def _recurring(ref: str, target: Mapping[str, Any], rest: dict[str, Any], path: str | None) -> dict[str, Any]:
    """The stub of a definition met again inside itself."""
    name = ref.rsplit("/", 1)[-1]
    where = f"describe it with property={path!r}" if path is not None else "see the whole with full=true"
    kind = {"type": target["type"]} if "type" in target else {}
    return {**kind, **rest, "x-compact": f"{name} again (it nests): {where}"}


class _Folding:
    """The largest view of a written-out schema within a budget: parts opened breadth first (at one
    depth, the smallest first), each whole if it fits, else one level (its big parts as stubs)."""

    def __init__(self, tree: dict[str, Any], path: str, budget: int, drill: bool, bare: bool = False) -> None:
        self._tree, self._path, self._budget, self._drill = tree, path, budget, drill
        self._bare = bare
        self._kept = ("type",) if bare else ("type", "description")
        self._sizes: dict[int, int] = {}
        self._texts: dict[int, str] = {}
        self._parts: set[int] = set()  # the tree's own sub-schemas, which live as long as this
        pending = [tree]
        while pending:
            self._parts.add(id(pending[-1]))
            pending.extend(_subschemas(pending.pop()))
        self._order = itertools.count()
        self._open: set[int] = {id(tree)}
        self._whole: set[int] = set()

    def result(self) -> dict[str, Any]:
        """Each part tried costs what it adds to the view unshared (an upper bound: sharing only
        shrinks); the view is rendered and measured again only when a part seems not to fit."""
        frontier: list[tuple[int, int, int, dict[str, Any], str]] = []
        self._push(frontier, self._tree, self._path, 1)
        used, exact = _size(self._render()), True
        trials = itertools.count()
        while frontier and next(trials) < _TRIALS:
            depth, weight, _, node, at = heapq.heappop(frontier)
            stub = _size(self._stub(node, at))
            for chosen, grown in ((self._whole, weight), (self._open, self._one_level(node, at))):
                if grown - stub > self._budget - used and not exact:
                    used, exact = _size(self._render()), True
                if grown - stub <= self._budget - used:
                    chosen.add(id(node))
                    used, exact = used + grown - stub, False
                    if chosen is self._open:
                        self._push(frontier, node, at, depth + 1)
                    break
        return self._render()

    def _push(self, frontier: list[Any], node: dict[str, Any], at: str, depth: int) -> None:
        for _, _, sub, segment in _slots(node):
            path = f"{at}.{segment}" if at else segment
            if not self._small(sub, path):
                heapq.heappush(frontier, (depth, self._size(sub), next(self._order), sub, path))

    def _one_level(self, node: dict[str, Any], at: str) -> int:
        """The size of ``node`` opened: its small parts whole, the others stubs."""

        def part(sub: dict[str, Any], segment: str) -> dict[str, Any]:
            path = f"{at}.{segment}" if at else segment
            return sub if self._small(sub, path) else self._stub(sub, path)

        return _size(_replaced(node, part))

    def _render(self) -> dict[str, Any]:
        return _shared(self._view(self._tree, self._path), self._text)

    def _text(self, node: dict[str, Any]) -> str:
        """The canonical JSON of a part, kept for the tree's own (not for a view's new dicts)."""
        if id(node) in self._parts:
            if id(node) not in self._texts:
                self._texts[id(node)] = _canonical(node)
            return self._texts[id(node)]
        return _canonical(node)

    def _view(self, node: dict[str, Any], at: str) -> dict[str, Any]:
        def part(sub: dict[str, Any], segment: str) -> dict[str, Any]:
            path = f"{at}.{segment}" if at else segment
            if id(sub) in self._open:
                return self._view(sub, path)
            if id(sub) in self._whole or self._small(sub, path):
                return sub
            return self._stub(sub, path)

        return _replaced(node, part)

    def _small(self, node: dict[str, Any], path: str) -> bool:
        stub = _size(self._stub(node, path))
        return self._size(node) <= (2 * stub if self._bare else stub + _STUB_SAVING)

    def _size(self, node: dict[str, Any]) -> int:
        if id(node) not in self._sizes:
            self._sizes[id(node)] = _size(node)
        return self._sizes[id(node)]

    def _stub(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        where = f"describe it with property={path!r}" if self._drill else "see the whole with full=true"
        kept = {k: node[k] for k in self._kept if k in node}
        return {**kept, "x-compact": f"{self._size(node):,} bytes left out: {where}"}


def _fewer(view: dict[str, Any], budget: int, path: str, drill: bool) -> dict[str, Any]:
    """``view`` with its last top-level properties (the required ones kept), or else its union's last
    branches, left out until it fits, and a note naming the first and last of those left out."""
    props, union = view.get("properties"), next((k for k in _BRANCHES if isinstance(view.get(k), list)), "")
    if isinstance(props, dict):
        required = set(view.get("required") or ())
        names = [n for n in props if n in required] + [n for n in props if n not in required]
        parts, what = {n: props[n] for n in names}, "properties"
    elif union:
        parts, what = {str(i): branch for i, branch in enumerate(view[union])}, "branches"
    else:
        return view
    room = budget - _size({**view, "properties" if props else union: {}}) - 200  # the note
    kept: list[str] = []
    for name, part in parts.items():
        room -= _size({name: part}) - 1
        if room < 0:
            break
        kept.append(name)
    left = [n for n in parts if n not in kept]
    if not left:
        return view
    where = f"property='{path}.<name>'" if path else "property='<name>'"
    ask = f"describe one with {where}" if drill else "see them with full=true"
    if what == "branches":
        ask = ask.replace("<name>", "<number>")
    note = f"{len(left)} more {what} left out ({left[0]!r} … {left[-1]!r}): {ask}"
    if what == "properties":
        return {
            **view,
            "properties": {n: p for n, p in view["properties"].items() if n in kept},
            "x-compact": note,
        }
    return {**view, union: [parts[n] for n in kept], "x-compact": note}


# the earlier steps


def _map(schema: dict[str, Any], fn: _Visit, depth: int) -> dict[str, Any]:
    """``schema`` with ``fn`` applied to each of its direct sub-schemas (depth: 1 for a top-level
    property); maps of named schemas and literal values (``enum``, ``default`` …) are not schemas."""

    def each(item: Any, at: int) -> Any:
        if isinstance(item, list):
            return [each(v, at) for v in item]
        return fn(item, at) if isinstance(item, dict) else item

    out: dict[str, Any] = {}
    for key, item in schema.items():
        if key in _DATA:
            out[key] = item
        elif key in _MAPS and isinstance(item, dict):
            out[key] = {name: each(sub, depth + (key == "properties")) for name, sub in item.items()}
        else:
            out[key] = each(item, depth)
    return out


def _walk(value: dict[str, Any], fn: _Visit, depth: int = 0) -> dict[str, Any]:
    """Rebuild a schema bottom-up, passing every sub-schema (and itself) through ``fn``."""
    return fn(_inside(value, fn, depth), depth)


def _inside(schema: dict[str, Any], fn: _Visit, depth: int) -> dict[str, Any]:
    """``schema`` with every sub-schema rebuilt by :func:`_walk` (not ``schema`` itself)."""
    return _map(schema, lambda sub, at: _walk(sub, fn, at), depth)


def _shared(schema: dict[str, Any], text: Callable[[dict[str, Any]], str] | None = None) -> dict[str, Any]:
    """Sub-schemas that occur more than once, largest first, stored once under ``$defs``; ``text`` is
    a sub-schema's canonical JSON (a cache of it)."""
    text = text or _canonical
    counts: Counter[str] = Counter()
    pending = list(_subschemas(schema))
    while pending:
        node = pending.pop()
        if len(text(node)) >= _SHARED_MIN_BYTES:
            counts[text(node)] += 1
            pending.extend(_subschemas(node))
    names: dict[str, str] = {}
    defs: dict[str, Any] = {}
    free = (f"shared{n}" for n in itertools.count(1) if f"shared{n}" not in (schema.get("$defs") or {}))

    def share(node: dict[str, Any], depth: int) -> dict[str, Any]:
        known = text(node)
        if counts.get(known, 0) < 2:
            return _map(node, share, depth)
        if known not in names:
            names[known] = next(free)
            defs[names[known]] = _map(node, share, depth)
        return {"$ref": f"#/$defs/{names[known]}"}

    top = _map(schema, share, 0)
    if defs:
        top["$defs"] = {**(top.get("$defs") or {}), **defs}
    return top


def _canonical(node: dict[str, Any]) -> str:
    return json.dumps(node, sort_keys=True)


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The direct sub-schemas of ``schema``, as :func:`_map` visits them."""
    for key, item in schema.items():
        if key in _DATA:
            continue
        items = item.values() if key in _MAPS and isinstance(item, dict) else [item]
        for sub in items:
            for each in sub if isinstance(sub, list) else [sub]:
                if isinstance(each, dict):
                    yield each


def _trimmed(schema: dict[str, Any]) -> dict[str, Any]:
    def trim(node: dict[str, Any], _depth: int) -> dict[str, Any]:
        out = dict(node)
        text = out.get("description")
        if isinstance(text, str) and len(text) > DESCRIPTION_CHARS:
            out["description"] = text[: DESCRIPTION_CHARS - 1].rstrip() + "…"
        values = out.get("enum")
        if isinstance(values, list) and len(values) > ENUM_VALUES:
            out["enum"] = values[:ENUM_VALUES]
            out["x-enum-count"] = len(values)
        return out

    result: dict[str, Any] = _walk(schema, trim)
    return result


def _top_descriptions_only(schema: dict[str, Any]) -> dict[str, Any]:
    def drop(node: dict[str, Any], depth: int) -> dict[str, Any]:
        if depth <= 1 or not isinstance(node.get("description"), str):
            return node
        return {k: v for k, v in node.items() if k != "description"}

    top: dict[str, Any] = _inside({k: v for k, v in schema.items() if k != "$defs"}, drop, 0)
    if "$defs" in schema:
        top["$defs"] = {
            k: _walk(v, drop, 2) if isinstance(v, dict) else v for k, v in schema["$defs"].items()
        }
    return top
