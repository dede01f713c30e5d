"""``$ref`` resolution across the loaded documents: RFC 6901 pointers, relative files, loops detected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from toolbridge.connectors.openapi._loader import SpecSource

__all__ = ["Located", "RefError", "Resolver", "escape_pointer", "pointer_of", "unescape_token"]

_MAX_CHAIN = 64


class RefError(Exception):
    """A ``$ref`` that cannot be followed. ``where`` is the JSON pointer of the offending ``$ref``."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True, slots=True)
class Located:
    """A node with the URI of its document (the base for relative refs inside it) and its pointer."""

    node: Any
    uri: str
    pointer: str

    @property
    def key(self) -> str:
        return f"{self.uri}#{self.pointer}"


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_of(*tokens: str | int) -> str:
    return "".join("/" + escape_pointer(str(t)) for t in tokens)


class Resolver:
    """Follows ``$ref`` chains in a :class:`SpecSource`."""

    def __init__(self, source: SpecSource) -> None:
        self.source = source
        self._found: dict[tuple[str, str], Located] = {}

    def deref(self, located: Located) -> Located:
        """Follow ``$ref``s from ``located`` until a node that is not a reference."""
        seen: list[str] = []
        current = located
        while isinstance(current.node, dict) and isinstance(current.node.get("$ref"), str):
            if current.key in seen or len(seen) > _MAX_CHAIN:
                chain = " -> ".join([*seen, current.key])
                raise RefError(f"$ref loop: {chain}", located.pointer)
            seen.append(current.key)
            current = self.lookup(current.node["$ref"], current.uri, current.pointer)
        return current

    def lookup(self, ref: str, base: str, where: str) -> Located:
        """The node ``ref`` points at, read relative to the document ``base`` (memoized)."""
        found = self._found.get((base, ref))
        if found is None:
            found = self._found[(base, ref)] = self._lookup(ref, base, where)
        return found

    def _lookup(self, ref: str, base: str, where: str) -> Located:
        target, fragment = (base, ref[1:]) if ref.startswith("#") else urldefrag(urljoin(base, ref))
        document = self.source.documents.get(target)
        if document is None:
            reason = self.source.missing.get(target, "the document was not loaded")
            raise RefError(f"unresolvable $ref {ref!r}: {reason}", where)
        pointer = unquote(fragment)
        node = _walk(document, pointer, ref, where)
        return Located(node, target, pointer)

    def where(self, located: Located) -> str:
        """Where a node is, for a report: its pointer, prefixed by its file when not the root document."""
        if located.uri == self.source.uri:
            return located.pointer or "/"
        return f"{_relative(located.uri, self.source.uri)}#{located.pointer}"

    def at(self, *tokens: str | int) -> Located:
        """A node of the root document by its path."""
        node: Any = self.source.root
        for token in tokens:
            node = node[token]
        return Located(node, self.source.uri, pointer_of(*tokens))


def _relative(uri: str, root: str) -> str:
    folder = root.rsplit("/", 1)[0] + "/"
    return uri[len(folder) :] if uri.startswith(folder) else uri


def _walk(document: Any, pointer: str, ref: str, where: str) -> Any:
    if pointer in ("", "/"):
        return document
    if not pointer.startswith("/"):
        raise RefError(f"unresolvable $ref {ref!r}: {pointer!r} is not a JSON pointer", where)
    node = document
    for raw in pointer[1:].split("/"):
        token = unescape_token(raw)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise RefError(f"unresolvable $ref {ref!r}: no {token!r} in the target document", where)
    return node
