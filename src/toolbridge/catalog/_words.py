"""Words for tool search: splitting identifiers, stop words, a light stemmer and a few synonyms.

``terms("listIncidentLogEntries")`` gives ``["list", "incident", "log", "entry"]``: names are split on
case changes, ``_``, ``.``, ``/``, ``-`` and digits; words are lower-cased, stop words dropped and
reduced to a stem so that "messages", "message" and "messaging" meet.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Literal

__all__ = [
    "STOP_WORDS",
    "Intent",
    "action",
    "compounds",
    "intent",
    "name_actions",
    "pieces",
    "plural",
    "plurals",
    "stem",
    "synonyms",
    "terms",
]

_RUN = re.compile(r"[A-Za-z]+|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")

_STOP_TEXT = """
    a about after again all also am an and any are as at be been being but by can could did do does
    doing done for from had has have having he her here him his how i if in into is it its itself just let
    me might more most must my myself no nor not now of once only or other our ours please right same
    she should so some such than that the their them then there these they this those through to too
    use used using very via want was way we were what when where which while who whom why will with
    would yes you your yours"""
STOP_WORDS = frozenset(_STOP_TEXT.split())

# Words agents use for the same action or thing (expanded into a query at a lower weight).
_SYNONYM_GROUPS = (
    "create add new make",
    "delete remove destroy drop erase purge wipe",
    "get fetch retrieve read show info view lookup find display",
    "list all enumerate",
    "update modify edit change set rename",
    "send post create notify",
    "search find lookup query",
    "user member person people account",
    "channel conversation room",
    "message text sms chat",
    "cancel stop abort end",
    "start begin run trigger launch",
    "key token credential secret",
    "spend cost billing usage",
    "team group",
    "team workspace",
    "restore unarchive undelete recover",
    "media image picture photo",
)


Intent = Literal["read", "write"]

# What a request's first word says it wants done: a question or a reading verb asks for a read, an
# action verb for a change ("show the log entries", "who is on call", "release a phone number").
_READ_TEXT = """what who which how where when whose is are does do list get show find look lookup read
    view fetch retrieve search see info count"""
_WRITE_TEXT = """create add new make delete remove destroy drop update modify edit change set rename send post
    notify cancel stop abort end start begin run trigger launch upload publish register buy release open
    close archive invite join leave pin star turn pause resume submit issue mark enable disable subscribe
    unsubscribe revoke generate schedule place merge reject kick hang transcribe translate mint exchange
    erase purge wipe text tag extend restore"""
_LEAD_IN_TEXT = "please i to want can could you let me us we need would like"
_READ_WORDS = frozenset(_READ_TEXT.split())
_WRITE_WORDS = frozenset(_WRITE_TEXT.split())
_LEAD_IN = frozenset(_LEAD_IN_TEXT.split())


# Two-word verbs whose first word alone would mislead ("get rid of" is no read), as the one word meant.
_PHRASAL = {
    ("get", "rid"): "delete",
    ("take", "away"): "remove",
    ("take", "off"): "remove",
    ("clean", "up"): "delete",
    ("pull", "up"): "show",
    ("look", "up"): "lookup",
    ("find", "out"): "find",
    ("set", "up"): "create",
    ("spin", "up"): "create",
    ("sign", "up"): "register",
    ("kick", "off"): "start",
    ("shut", "down"): "stop",
    ("turn", "on"): "enable",
    ("turn", "off"): "disable",
    ("hang", "up"): "end",
}


def _first_word(text: str) -> str | None:
    """The first word of ``text`` after a lead-in ("please", "I want to", "can you"), a two-word verb
    (:data:`_PHRASAL`) read as the one word it means."""
    words: list[str] = re.findall(r"[a-z]+", text.lower())
    for i, word in enumerate(words):
        if word not in _LEAD_IN:
            return _PHRASAL.get((word, words[i + 1] if i + 1 < len(words) else ""), word)
    return None


def intent(text: str) -> Intent | None:
    """Whether ``text`` asks to read or to change something, by its first word after a lead-in ("please",
    "I want to", "can you"); None when that word is neither a question word nor a known verb."""
    word = _first_word(text)
    return "read" if word in _READ_WORDS else "write" if word in _WRITE_WORDS else None


# What kind of change or read a verb names, in a request's first word or among a tool name's words
# ("release a phone number" wants a tool named delete_…, not create_…).
_ACTION_TEXT = {
    "create": "create add new make post insert register buy open generate upload issue mint place text",
    "delete": "delete remove destroy drop release revoke kick leave archive close erase purge wipe",
    "read": "get fetch retrieve read show view lookup look find list what who which how see count search "
    "query display",
    "update": "update modify edit change set rename patch turn mark enable disable tag extend restore",
}
_ACTIONS = {word: kind for kind, words in _ACTION_TEXT.items() for word in words.split()}


def action(text: str) -> str | None:
    """The kind of action (create, delete, read, update) ``text``'s first word after a lead-in names,
    or None."""
    word = _first_word(text)
    return None if word is None else _ACTIONS.get(word)


def name_actions(name: str) -> frozenset[str]:
    """The kinds of action the words of a tool's name name (``delete_incoming_phone_number``: delete;
    ``usergroups_users_update``: update; none for ``conversations_history``)."""
    return frozenset(_ACTIONS[word] for word in pieces(name) if word in _ACTIONS)


def _synonym_table() -> dict[str, tuple[str, ...]]:
    table: dict[str, dict[str, None]] = {}
    for group in _SYNONYM_GROUPS:
        stems = [stem(word) for word in group.split()]
        for word in stems:
            table.setdefault(word, {}).update(dict.fromkeys(s for s in stems if s != word))
    return {word: tuple(others) for word, others in table.items()}


def pieces(text: str) -> Iterator[str]:
    """The lower-cased words of ``text``, identifiers split on case changes and punctuation, numbers
    dropped; not stemmed, stop words kept."""
    for run in _RUN.findall(text):
        if run.isdigit():
            continue  # versions and dates ("2010-04-01", "v3") say nothing about what a tool does
        for piece in _CAMEL.findall(run):
            yield piece.lower()


def stem(word: str) -> str:
    """A light suffix-stripping stem: plurals, ``-ing``, ``-ed`` and a final ``e``."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "ches", "shes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
        if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
            word = word[:-1]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The stemmed search terms of ``text``, in order, stop words and one-letter pieces dropped."""
    return [stem(p) for p in _words(text)]


def compounds(text: str) -> list[str]:
    """Adjacent words of ``text`` joined into one term ("user group" → "usergroup", "web hook" →
    "webhook"), for names that write them as one word."""
    words = _words(text)
    return [stem(a + b) for a, b in itertools.pairwise(words)]


def _words(text: str) -> list[str]:
    return [p for p in pieces(text) if len(p) > 1 and p not in STOP_WORDS]


def plural(word: str) -> bool:
    """Whether ``word`` (as written) is a plural: "runs", "entries"; not "status", "access", "analysis"."""
    return (
        len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) and stem(word) != word
    )


def plurals(text: str) -> frozenset[str]:
    """The stems of ``text``'s words written in the plural ("which recordings": many are asked for)."""
    return frozenset(stem(w) for w in pieces(text) if w not in STOP_WORDS and plural(w))


def synonyms(term: str) -> tuple[str, ...]:
    """Other stems agents use for ``term`` (empty when none are known)."""
    return _SYNONYMS.get(term, ())


_SYNONYMS = _synonym_table()
