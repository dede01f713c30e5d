"""Suggestions for a mistyped name, as every error message words them (re-exported by
:mod:`toolbridge.errors`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_matches", "did_you_mean"]


def did_you_mean(candidates: Iterable[str]) -> str | None:
    """Render suggestions as Click does: ``did you mean 'a' or 'b'?``."""
    names = [f"{c!r}" for c in candidates]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1] if names else ""
    return f"did you mean {listed}?" if names else None


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` close to ``word`` (difflib's ratio at least ``cutoff``), closest first."""
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)
