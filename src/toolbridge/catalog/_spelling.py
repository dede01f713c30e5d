"""Misspelt query words, read as the nearest word the catalog's names and summaries use.

An agent (or a person at the CLI) writes "mesage" or "incdient"; no tool holds those terms, BM25F finds
nothing for them and the embedding of a misspelt word is far from the right one. A word of the query
that is at least :data:`MIN_LENGTH` letters long, not a word of the language (the embedding model's
whole-word vocabulary: "marketing" and "seats" are left alone though no tool uses them) and not in any
tool (nor any of its synonyms), is read as the word one edit away (a letter dropped, added, changed, or
two swapped) that the most tools use in their names, summaries, parameter names, tags and connector
names: those are the words a query means, and an API document's description's long tail would turn a
query for something the catalog does not have into a weak match for something it has. Without the
embedding model (``toolbridge[semantic]``) there is no vocabulary and queries are read as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator, Mapping

from toolbridge.catalog._words import STOP_WORDS, stem, synonyms

__all__ = ["MIN_LENGTH", "Speller"]

MIN_LENGTH = 5
"""Shorter words are left as written: one edit away from a four-letter word are dozens of others."""
MIN_USES = 2
"""A word read instead must be used by this many tools: an API document's own typo ("markeeing") is no
correction."""
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z]+(?![A-Za-z0-9_])")
"""A word standing alone: not a piece of an identifier ("cfile_12", "v1beta")."""


def _edits(word: str) -> Iterator[str]:
    """The words one edit from ``word``: a letter dropped, two adjacent letters swapped, a letter
    changed, a letter added."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    for left, right in splits:
        if right:
            yield left + right[1:]
            if len(right) > 1:
                yield left + right[1] + right[0] + right[2:]
            for letter in _LETTERS:
                if letter != right[0]:
                    yield left + letter + right[1:]
        for letter in _LETTERS:
            yield left + letter + right


class Speller:
    """Reads the misspelt words of queries over one index. ``headline``: the words (as written,
    lower-cased) of the tools' names, summaries, parameter names, tags and connector names, each with
    the count of tools using it; ``held``: whether a stemmed term is in any field of any tool."""

    def __init__(self, headline: Mapping[str, int], held: Callable[[str], bool]) -> None:
        self._headline = headline
        self._held = held
        self._read: dict[str, str | None] = {}
        """Word → how it is read (None: as written), for the words already seen."""

    def read(self, query: str, words: Container[str]) -> tuple[str, dict[str, str]]:
        """``query`` with its misspelt words replaced, and what each was read as. ``words``: the
        words of the language, left as written even when no tool uses them ("marketing", "seats"): the
        embedding model's whole-word vocabulary."""
        changed: dict[str, str] = {}

        def replace(match: re.Match[str]) -> str:
            written = match.group(0)
            word = written.lower()
            if written not in (word, word.capitalize()):
                return written  # an identifier ("listIncidents"): its pieces are words of their own
            fixed = self._word(word, words)
            if fixed is None:
                return written
            changed[word] = fixed
            return fixed

        return _WORD.sub(replace, query), changed

    def _word(self, word: str, words: Container[str]) -> str | None:
        if len(word) < MIN_LENGTH or word in STOP_WORDS or word in words or word in self._headline:
            return None
        if word not in self._read:
            if len(self._read) > 10_000:  # a long-running server's queries do not grow it without end
                self._read.clear()
            self._read[word] = self._nearest(word)
        return self._read[word]

    def _nearest(self, word: str) -> str | None:
        term = stem(word)
        if self._held(term) or any(self._held(other) for other in synonyms(term)):
            return None  # a word of the catalog's descriptions ("jsonl")
        best, most = None, MIN_USES - 1
        for candidate in sorted(set(_edits(word))):
            uses = self._headline.get(candidate, 0)
            if uses > most:
                best, most = candidate, uses
        return best
