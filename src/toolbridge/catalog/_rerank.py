"""A learned re-ranking of a fused search's first candidates: a linear score over signals the search
has computed anyway, fitted on labelled tasks.

Reciprocal rank fusion (:mod:`toolbridge.catalog._search`) knows ranks, not why a tool ranks where it
does; its misses are mostly near neighbours in one API (``get_eval_run`` for "the status of run
evalrun_9", not ``get_eval_runs``; ``delete_ruleset_event_rule`` for "remove a rule from a ruleset",
not ``delete_ruleset``). The candidates — the fused ranking's first :data:`CANDIDATES` and the first
:data:`EACH` of BM25F's and of the embeddings' — are ordered again by ``sum(weight * feature)``
(:data:`WEIGHTS`, one per :data:`FEATURES`): a conditional logit model (a softmax over each task's
candidates) with an L2 penalty, fitted by ``bench/fit_rerank.py`` on the development parts of
tests/catalog/tool_search_queries.tsv only (never the held-out parts), which prints these constants
and its cross-validation. A tool's score in the answer is its probability among the candidates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from toolbridge.catalog._words import pieces, terms

__all__ = [
    "CANDIDATES",
    "EACH",
    "FEATURES",
    "GOOD",
    "MATCH_SIGNALS",
    "TERMS_COUNTED",
    "WEIGHTS",
    "described",
    "described_text",
    "good_match",
    "identifiers",
    "probabilities",
    "raw_words",
]

CANDIDATES = 20
"""How many of the fused ranking's first tools are re-ordered."""
EACH = 10
"""How many of BM25F's and of the embeddings' first tools join the candidates."""

FEATURES = (
    "fused score over the best candidate's",
    "1 / fused rank",
    "BM25F score over the best",
    "1 / BM25F rank (0 beyond its first 50)",
    "similarity minus the best similarity",
    "1 / similarity rank (0 beyond its first 50)",
    "share of the name's terms the query holds (its synonyms too)",
    "share of the query's terms in the name",
    "IDF share of the query's terms the tool holds in any field",
    "a read asked for, the tool not read-only (in a connector that marks some)",
    "a change asked for, the tool read-only",
    "the name's verbs all of another kind than the query's first word",
    "the name holds a verb of the query's first word's kind",
    "no verb asked, the tool not read-only (in a connector that marks some)",
    "IDF share of the name's terms the query holds",
    "IDF share of the query's terms (or their synonyms) in the name",
    "share of the name's words the query has as written (not stemmed: runs is not run)",
    "identifiers in the query (up to 3) times the tool's required id parameters",
    "identifiers in the query (up to 3), the tool read-only without a required id (a listing)",
    "the name says many (list_…, a plural) and holds a word the query puts in the plural",
    "an admin tool (admin in its name) for a request that does not say admin",
)

WEIGHTS = (
    1.9568,
    -0.14013,
    0.318052,
    0.766028,
    11.2747,
    0.282721,
    0.0920099,
    -2.53659,
    4.3786,
    -1.84853,
    -1.61247,
    -0.874675,
    0.551703,
    0.752879,
    0.608183,
    0.247299,
    1.67301,
    0.31032,
    -0.287447,
    1.55786,
    -0.951473,
)
"""Per feature, for features as :meth:`SearchIndex._features` computes them (the fit's standardisation
folded in: a constant shift changes no ranking). Printed by ``bench/fit_rerank.py``."""

MATCH_SIGNALS = (
    "coverage: the IDF share of the query's terms (but its identifiers) the best hit holds",
    "similarity: the best hit's embedding's cosine with the query's",
    "the share of those terms no tool of the catalog holds ('fax', 'huddle')",
    "how many terms those are (up to 12: a long request covers less of itself)",
)

GOOD = (3.61386, 7.97537, -4.98089, 0.264917, 5.09949)
"""A search's best hit is a good match when ``sum(GOOD[k] * signal[k]) >= GOOD[-1]`` over the
:data:`MATCH_SIGNALS`: the boundary of a logistic regression fitted by ``bench/fit_rerank.py`` on the
development tasks with and without a tool, cut where it flags the most no-tool tasks and the fewest others
(the sum of both shares is largest)."""

TERMS_COUNTED = 12
"""The most query terms the last match signal counts."""

_IDENTIFIER = re.compile(r"(?<![\w-])(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{3,}(?![\w-])")


def identifiers(query: str) -> int:
    """How many words of ``query`` look like an identifier or a number (``PSCH1``, ``evalrun_9``,
    ``cons_123``): a query that names one item."""
    return len(_IDENTIFIER.findall(query))


def described_text(query: str) -> str:
    """``query`` without its identifiers (:func:`identifiers`)."""
    return _IDENTIFIER.sub(" ", query)


def described(query: str, own: tuple[str, ...]) -> tuple[str, ...]:
    """The terms of ``query`` that say what is wanted: ``own`` (its terms) without those of its identifiers
    ("evalrun_9", "PSCH1" are values, which no tool's text holds), all of ``own`` if nothing else is left.
    What a good match must cover."""
    kept = tuple(dict.fromkeys(terms(described_text(query))))
    return kept or own


def raw_words(text: str) -> frozenset[str]:
    """The words of ``text`` (identifiers split, lower-cased) as written: not stemmed, stop words kept."""
    return frozenset(p for p in pieces(text) if len(p) > 1)


def probabilities(rows: Sequence[Sequence[float]], weights: Sequence[float] = WEIGHTS) -> list[float]:
    """Each candidate's probability of being the tool asked for: a softmax of its weighted features."""
    scores = [math.fsum(w * x for w, x in zip(weights, row, strict=True)) for row in rows]
    top = max(scores, default=0.0)
    raised = [math.exp(s - top) for s in scores]
    total = math.fsum(raised)
    return [r / total for r in raised]


def good_match(signals: Sequence[float], boundary: Sequence[float] = GOOD) -> bool:
    """Whether a best hit with these :data:`MATCH_SIGNALS` is a good match (:data:`GOOD`)."""
    return math.fsum(w * x for w, x in zip(boundary[:-1], signals, strict=True)) >= boundary[-1]
