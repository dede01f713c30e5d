"""Tool and argument names: ``connector.snake_name``, ≤ 64 characters, unique and stable across reloads."""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = ["MAX_TOOL_NAME", "NameBook", "arg_name", "operation_name", "snake"]

MAX_TOOL_NAME = 64
_PLURAL_ACRONYM = re.compile(r"([A-Z]{2,})s(?![a-z])")
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_ARG_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_MARKS = (("<=", "_lte"), (">=", "_gte"), ("<", "_lt"), (">", "_gt"), ("!=", "_ne"))
"""Comparison marks in parameter names (Twilio's ``StartTime<``) become words, not collisions."""


@functools.lru_cache(maxsize=4096)
def snake(text: str) -> str:
    """``listIncidents`` → ``list_incidents``; ``chat.postMessage`` → ``chat_post_message``."""
    text = _PLURAL_ACRONYM.sub(r"\1S", text)  # "URLs" is one word
    spaced = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", text))
    return _NOT_WORD.sub("_", spaced.lower()).strip("_")


def operation_name(operation_id: str | None, method: str, path: str) -> str:
    """The operation part of a tool name: from ``operationId``, else method and path."""
    if operation_id and snake(operation_id):
        return snake(operation_id)
    return snake(f"{method} {path}") or method.lower()


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:6]


class NameBook:
    """Hands out unique tool names for one connector.

    A name that is too long, or taken, gets a short digest of the operation's method and path — which
    does not depend on the order of operations, so names stay stable when a document gains operations.
    """

    def __init__(self, connector: str) -> None:
        self._prefix = connector + "."
        self._room = MAX_TOOL_NAME - len(self._prefix)
        self._taken: set[str] = set()

    def claim(self, wanted: str, identity: str) -> str:
        name = wanted if len(wanted) <= self._room else self._with_digest(wanted, identity)
        if self._prefix + name in self._taken:
            name = self._with_digest(wanted, identity)
        n = 2
        while self._prefix + name in self._taken:
            name = self._with_digest(wanted, f"{identity}#{n}")
            n += 1
        self._taken.add(self._prefix + name)
        return self._prefix + name

    def _with_digest(self, wanted: str, identity: str) -> str:
        return wanted[: max(self._room - 7, 1)].rstrip("_") + "_" + _digest(identity)


@functools.lru_cache(maxsize=8192)
def arg_name(name: str) -> str:
    """An argument name every MCP client accepts (``[A-Za-z0-9_.-]{1,64}``)."""
    for mark, word in _MARKS:
        name = name.replace(mark, word)
    cleaned = _ARG_CHARS.sub("_", name).strip("_") or "value"
    return cleaned if len(cleaned) <= 64 else cleaned[:57] + "_" + _digest(name)
