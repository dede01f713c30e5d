"""Tool and argument names: ``connector.snake_name``, ≤ 64 characters, unique and stable across reloads."""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = ["MAX_TOOL_NAME", "NameBook", "arg_name", "operation_name", "shortened", "snake"]

MAX_TOOL_NAME = 64
_SMALL_WORDS = frozenset(
    ["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"]
)
# fmt: off
_VERBS = frozenset({
    "accept", "activate", "add", "approve", "archive", "block", "cancel", "check", "copy", "create",
    "deactivate", "decline", "delete", "disable", "download", "enable", "export", "get", "import", "invite",
    "list", "lock", "merge", "move", "patch", "post", "promote", "put", "redeliver", "regenerate", "reject",
    "remove", "replace", "rerun", "reset", "restore", "retry", "review", "revoke", "rotate", "run",
    "search", "set", "start", "stop", "suspend", "sync", "test", "transfer", "unblock", "unlock",
    "unsuspend", "update", "upload",
})
# fmt: on
"""Words kept longest when a name is shortened: what an operation does."""
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
        return shortened(wanted, max(self._room - 7, 1)) + "_" + _digest(identity)


def shortened(name: str, room: int) -> str:
    """``name`` in at most ``room`` characters, words left out from its middle — small words first, then
    words said twice, then the longest, verbs last — never its first and last words, which with its verbs
    tell one operation from its neighbours (``…_for_organization`` / ``…_for_repository``, ``create_…`` /
    ``delete_…``): cutting the end left names that differed only by their digest."""
    if len(name) <= room:
        return name
    words = [w for w in name.split("_") if w]
    middle = range(1, len(words) - 1)
    said: set[str] = set()
    twice = set()
    for i, word in enumerate(words):
        if word in said:
            twice.add(i)
        said.add(word)
    order = sorted(
        middle,
        key=lambda i: (words[i] not in _SMALL_WORDS, i not in twice, words[i] in _VERBS, -len(words[i]), i),
    )
    kept = set(range(len(words)))
    for i in order:
        if len("_".join(words[j] for j in sorted(kept))) <= room:
            break
        kept.discard(i)
    return "_".join(words[j] for j in sorted(kept))[:room].strip("_")


@functools.lru_cache(maxsize=8192)
def arg_name(name: str, *, cut: bool = True) -> str:
    """An argument name every MCP client accepts (``[A-Za-z0-9_.-]{1,64}``); ``cut=False``: of any length
    (a tool name, which :class:`NameBook` shortens to fit beside its connector's prefix)."""
    original = name
    for mark, word in _MARKS:
        name = name.replace(mark, word)
    cleaned = _ARG_CHARS.sub("_", name).strip("_") or "value"
    if len(cleaned) <= 64 or not cut:
        return cleaned
    return shortened(cleaned, 57) + "_" + _digest(original)
