"""BERT's WordPiece tokenizer for the semantic layer, read from the packaged ``tokenizer.json``.

What the ``tokenizers`` package does for all-MiniLM-L6-v2 (its ``BertNormalizer`` with lowercasing
and accent stripping, ``BertPreTokenizer``, ``WordPiece`` with ``##`` continuations, ``[CLS] … [SEP]``
around the text), in Python over one vocabulary dict: that package held ~14 MiB (its library and a
loaded tokenizer) for a model that embeds a few short texts, this ~4 MiB; the ids are the same for every
tool text and query of the bench (tests/catalog/test_semantic.py compares them when ``tokenizers`` is
installed). A text is tokenized alone, so there is no padding and no batch.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Container
from pathlib import Path

__all__ = ["WordPiece"]

_KEEP = frozenset("\t\n\r")


class WordPiece:
    """Text → BERT input ids (``[CLS]``, the word pieces, ``[SEP]``), at most ``max_length`` ids."""

    def __init__(self, path: Path, *, max_length: int) -> None:
        with path.open(encoding="utf-8") as file:
            spec = json.load(file)
        model = spec["model"]
        self._vocab: dict[str, int] = model["vocab"]
        self._unknown = self._vocab[model["unk_token"]]
        self._prefix: str = model["continuing_subword_prefix"]
        self._longest_word: int = model["max_input_chars_per_word"]
        self._first, self._last = self._vocab["[CLS]"], self._vocab["[SEP]"]
        self._max_length = max_length
        self._special = {t["content"]: t["id"] for t in spec.get("added_tokens", ())}
        """Tokens matched as they are written (``[SEP]``) before normalisation, as ``tokenizers`` does."""
        alternatives = "|".join(map(re.escape, self._special))
        self._split = re.compile(f"({alternatives})") if self._special else None

    @property
    def vocabulary(self) -> Container[str]:
        """The model's pieces: whole (lower-cased) words and ``##`` continuations."""
        return self._vocab

    def ids(self, text: str) -> list[int]:
        pieces: list[int] = []
        budget = self._max_length - 2  # [CLS] and [SEP]
        parts = self._split.split(text) if self._split is not None else [text]
        for part in parts:
            special = self._special.get(part)
            if special is not None:
                pieces.append(special)
                continue
            for word in _words(_normalise(part)):
                pieces.extend(self._word(word))
                if len(pieces) >= budget:
                    return [self._first, *pieces[:budget], self._last]
        return [self._first, *pieces[:budget], self._last]

    def _word(self, word: str) -> list[int]:
        if len(word) > self._longest_word:
            return [self._unknown]
        found: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self._prefix + word[start:end]
                number = self._vocab.get(piece)
                if number is not None:
                    found.append(number)
                    break
                end -= 1
            else:  # no piece of the vocabulary starts here: the whole word is unknown
                return [self._unknown]
            start = end
        return found


def _normalise(text: str) -> str:
    """BertNormalizer: control characters dropped, white space made spaces, CJK ideographs spaced out,
    accents stripped, lower case."""
    kept = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or (char not in _KEEP and unicodedata.category(char)[0] == "C"):
            continue
        if char.isspace():
            kept.append(" ")
        elif _chinese(code):
            kept.append(f" {char} ")
        else:
            kept.append(char)
    decomposed = unicodedata.normalize("NFD", "".join(kept))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()


def _words(text: str) -> list[str]:
    """BertPreTokenizer: split on white space, each punctuation character a word of its own."""
    words: list[str] = []
    for chunk in text.split():
        if chunk.isalnum():
            words.append(chunk)
            continue
        current = ""
        for char in chunk:
            if _punctuation(char):
                if current:
                    words.append(current)
                words.append(char)
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def _punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _chinese(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )
