"""The tool search index: BM25F ranking over each tool's name, summary, description and parameters.

Each tool is one document of weighted fields (the operation part of its name counts most; the
connector's name counts little, so "slack" prefers Slack's tools without making every one of them a
match). Terms come from :func:`toolbridge.catalog._words.terms` (identifier splitting, stop words,
stemming); a query's terms are widened with a few synonyms at a lower weight and with its adjacent
words joined (``usergroup``). Scores are BM25 with
per-field length normalisation (BM25F), raised by up to half for a tool whose name the query's terms
cover (``list_projects`` for "list the projects", more than ``archive_project``); ties break on how
many query terms the tool's name holds, then on the shorter name.

With an :class:`~toolbridge.catalog._semantic.Embedder` (the optional extra ``toolbridge[semantic]``),
each tool also has a sentence embedding, and a search fuses the two rankings by reciprocal rank
(each tool scores ``weight / (RRF_K + rank)`` in each ranking it is in, among the first :data:`DEPTH`),
and a tool whose read-only annotation disagrees with what the query asks for (a question or a reading
verb, or an action verb) loses :data:`INTENT_PENALTY` of its fused score, and one whose name's verbs are
of another kind than the query's first word (create, delete, read, update) :data:`ACTION_PENALTY`;
without an embedder, or with ``mode="bm25"``, the BM25F ranking alone answers.

Before any of that, a query's misspelt words ("mesage") are read as the catalog's ("message"), when the
embedding model's vocabulary says they are no words (:mod:`~toolbridge.catalog._spelling`).

A search also says whether its best hit is a good match: BM25F alone, when the hit covers at least
:data:`GOOD_MATCH` of the query's weight (IDF of its terms); with embeddings, by that share and the hit's
similarity to the query together (:func:`~toolbridge.catalog._rerank.good_match`). Otherwise the answer
is "no good match" and the caller should rephrase (see :attr:`SearchResult.good`).
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from toolbridge.catalog import _rerank
from toolbridge.catalog._rerank import described, described_text, identifiers, raw_words
from toolbridge.catalog._spelling import Speller
from toolbridge.catalog._tool import Tool
from toolbridge.catalog._words import (
    action,
    compounds,
    intent,
    name_actions,
    pieces,
    plural,
    plurals,
    synonyms,
    terms,
)

if TYPE_CHECKING:
    from toolbridge.catalog._semantic import Embedder, EmbeddingCache, Vectors

__all__ = ["GOOD_MATCH", "Mode", "SearchHit", "SearchIndex", "SearchResult", "summary_of"]

Mode = Literal["fused", "bm25", "semantic"]

K1 = 1.2
GOOD_MATCH = 0.5
"""The share of a query's weight the best hit must cover to count as a good match (BM25F alone)."""
RRF_K = 5
SEMANTIC_WEIGHT = 0.75
"""Reciprocal rank fusion: a tool scores ``weight / (RRF_K + rank)`` in each ranking (BM25F's weight 1);
both chosen on the tasks written before the held-out ones (bench/tool_search.py; MRR there is flat,
0.80-0.83, for RRF_K from 1 to 60 and weights from 0.6 to 1.5, and no better with min-max score
normalisation or BM25F's score over its best plus the similarity instead of ranks)."""
DEPTH = 50
"""How far down each ranking reciprocal rank fusion looks."""
SEMANTIC_FLOOR = 0.2
"""Tools less similar to the query than this are no semantic candidates (unrelated tools stay out)."""
SYNONYM_WEIGHT = 0.35
NAME_FIT = 2.0
"""A score grows by up to this share with the part of the tool's name the query's terms cover (0.5
before: "delete a team" ranked ``delete_team_user`` above ``delete_team``). With the fusion's constants
above, on the 156 development tasks with a tool: fused top-1 71.8% -> 75.0%, MRR 0.817 -> 0.834 (NAME_FIT
1.5-3.0 all within 0.001); held out, run once: 68.0% / 94.7% / 0.799 -> 70.0% / 95.3% / 0.805."""
INTENT_PENALTY = 0.4
"""A fused score shrinks by this share when the tool's read-only annotation disagrees with what the
query's first word asks for (:func:`~toolbridge.catalog._words.intent`: "show the log entries" wants a
read-only tool, "create a maintenance window" one that is not). Chosen on the 156 development tasks
with a tool (0.2-0.6 tried; 0.4: top-1 75.6% -> 76.3%, top-5 95.5% -> 96.2%, MRR 0.838 -> 0.848);
held out, run once: 70.0% / 94.7% / 0.808 -> 76.0% / 96.0% / 0.852 (top-1 / top-5 / MRR)."""
ACTION_PENALTY = 0.3
"""A fused score shrinks by this share too when the tool's name holds verbs (:func:`name_actions`) and
none of the kind the query's first word names (:func:`~toolbridge.catalog._words.action`: "release a
phone number" wants ``delete_incoming_phone_number``, not ``create_…``). Chosen on the 156 development
tasks with a tool, with :data:`INTENT_PENALTY` at 0.4 (0.1-0.4 tried; 0.3: top-1 76.3% -> 78.2%, top-5
96.2% -> 95.5%, MRR 0.848 -> 0.859); held out, run once: 76.0% / 96.0% / 0.852 -> 78.7% / 96.0% /
0.869."""
_VERB_TEXT = "add create delete fetch get list post put remove retrieve set update"
_VERBS = frozenset(_VERB_TEXT.split())
_DESCRIPTION_TERMS = 400  # a 40 KB description is not 100 times more about its subject than a short one

# field → (weight, length normalisation b)
_FIELDS: dict[str, tuple[float, float]] = {
    "name": (4.0, 0.3),
    "summary": (2.0, 0.5),
    "description": (1.0, 0.75),
    "params": (0.7, 0.5),
    "param_text": (0.25, 0.75),
    "connector": (0.6, 0.0),
    "tags": (0.5, 0.0),  # an API document's groups ("Incidents"): CV 464.8 -> 466.2 first of 594, noise
}


def summary_of(tool: Tool, limit: int = 160) -> str:
    """The first non-empty line of the tool's title or description, cut to ``limit`` characters."""
    for line in (tool.title or "", *tool.description.splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


@dataclass(frozen=True, slots=True)
class SearchHit:
    tool: Tool
    score: float


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Ranked hits and whether the best of them is a good match for the query."""

    hits: list[SearchHit]
    good: bool
    terms: tuple[str, ...]
    """The query's own search terms (after stop words and stemming); empty for an empty query."""
    read_as: Mapping[str, str] = field(default_factory=dict)
    """Misspelt words of the query and the words they were read as (:mod:`~toolbridge.catalog._spelling`)."""


@dataclass(frozen=True, slots=True)
class _Query:
    """What the re-ranking reads from a query, worked out once per search."""

    text: str
    own: tuple[str, ...]
    """Its search terms."""
    described: tuple[str, ...]
    """Its terms but those of identifiers (:func:`~toolbridge.catalog._rerank.described`)."""
    widened: frozenset[str]
    """Its terms and their synonyms."""
    written: frozenset[str]
    """Its words as written (:func:`~toolbridge.catalog._rerank.raw_words`)."""
    wanted: str | None
    kind: str | None
    items: int
    """Identifiers it names, up to 3."""
    plural: frozenset[str]
    """Stems of its words written in the plural ("recordings"): it asks for many (:func:`plurals`)."""

    @classmethod
    def of(cls, text: str, own: tuple[str, ...] | None = None) -> _Query:
        own = tuple(dict.fromkeys(terms(text))) if own is None else own
        return cls(
            text,
            own,
            described(text, own),
            frozenset(own).union(*(synonyms(t) for t in own)),
            raw_words(text),
            intent(text),
            action(text),
            min(identifiers(text), 3),
            plurals(described_text(text)),
        )


def _fields(tool: Tool) -> dict[str, list[str]]:
    schema_props = tool.input_schema.get("properties")
    props: Mapping[str, Any] = schema_props if isinstance(schema_props, Mapping) else {}
    param_text = " ".join(str(p.get("description", "")) for p in props.values() if isinstance(p, Mapping))
    lines = tool.description.strip().split("\n", 1)
    return {
        "name": terms(tool.operation),
        "summary": terms(" ".join(filter(None, (tool.title, lines[0])))),
        "description": terms(lines[1] if len(lines) > 1 else "")[:_DESCRIPTION_TERMS],
        "params": terms(" ".join(props)),
        "param_text": terms(param_text)[:_DESCRIPTION_TERMS],
        "connector": terms(tool.connector),
        "tags": terms(" ".join(tool.tags)),
    }


def _headline(tool: Tool) -> set[str]:
    """The words (as written, lower-cased) a misspelt query word may be read as: those of the tool's name,
    title, summary, parameter names, tags and connector (:mod:`~toolbridge.catalog._spelling`)."""
    props = tool.input_schema.get("properties")
    text = [tool.operation, tool.title or "", tool.description.strip().split("\n", 1)[0], tool.connector]
    text += [*props] if isinstance(props, Mapping) else []
    return set(pieces(" ".join([*text, *tool.tags])))


class SearchIndex:
    """An immutable BM25F index over ``tools``; build a new one when the catalog changes."""

    def __init__(
        self,
        tools: Iterable[Tool],
        *,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self._tools = list(tools)
        self._embedder = embedder
        self._vectors: Vectors | None = None
        if embedder is not None:
            from toolbridge.catalog._semantic import EmbeddingCache, tool_text

            store = cache if cache is not None else EmbeddingCache()
            self._vectors = store.vectors(embedder, [tool_text(t) for t in self._tools])
        docs = [_fields(tool) for tool in self._tools]
        self._names = [frozenset(doc["name"]) for doc in docs]
        self._name_sizes = [len(name) for name in self._names]
        averages = {f: (sum(len(d[f]) for d in docs) / len(docs)) if docs else 0.0 for f in _FIELDS}
        self._postings: dict[str, tuple[list[int], list[float]]] = {}
        """Term → the tools holding it, and for each BM25's saturated term frequency ``tf / (K1 + tf)``."""
        for i, doc in enumerate(docs):
            for term, tf in _weighted_tf(doc, averages).items():
                holders, saturated = self._postings.setdefault(term, ([], []))
                holders.append(i)
                saturated.append(tf / (K1 + tf))
        self._speller = Speller(
            Counter(w for t in self._tools for w in _headline(t)), self._postings.__contains__
        )
        self._named: dict[str, list[int]] = {}
        """Term → the tools whose name holds it."""
        for i, name in enumerate(self._names):
            for term in name:
                self._named.setdefault(term, []).append(i)
        n = len(docs)
        counts = {term: len(tools) for term, (tools, _) in self._postings.items()}
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in counts.items()}
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        self._count_connector_words()
        kinds: dict[frozenset[str], frozenset[str]] = {}
        self._actions = [kinds.setdefault(a, a) for a in (name_actions(t.operation) for t in self._tools)]
        """Each tool's name's kinds of action (a few distinct sets, shared)."""
        self._marks_read_only = frozenset(t.connector for t in self._tools if t.annotations.read_only)
        """Connectors that mark some tools read-only: in one that marks none (an MCP server whose tools
        the configuration does not mark), a tool that is not read-only may well be, and a read query
        leaves it be."""
        self._raw_names = [raw_words(t.operation) for t in self._tools]
        """Each tool's name's words as written (the re-ranking tells ``get_eval_runs`` from ``…_run``)."""
        self._id_params = [_id_params(t) for t in self._tools]
        self._listings = [_listing(raw) for raw in self._raw_names]
        """How many required parameters each tool's arguments name an id (``…_id``, ``…Sid``)."""

    def __len__(self) -> int:
        return len(self._tools)

    def attach(self, embedder: Embedder, vectors: Vectors) -> None:
        """Give the tools their embeddings (one row each, in order) once computed in the background:
        searches from then on are fused."""
        if len(vectors) != len(self._tools):
            raise ValueError(f"{len(vectors)} embeddings for {len(self._tools)} tools")
        self._embedder = embedder
        self._vectors = vectors  # last: a search that sees the vectors sees the embedder too

    @property
    def semantic(self) -> bool:
        """Whether tools have embeddings (searches fuse BM25F with them)."""
        return self._vectors is not None

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        keep: Callable[[Tool], bool] | None = None,
        mode: Mode = "fused",
        spelling: bool = True,
    ) -> SearchResult:
        """The ``limit`` best tools for ``query`` among those ``keep`` accepts (all when None); with
        ``spelling`` and the embedding model, its misspelt words read as the catalog's
        (:mod:`~toolbridge.catalog._spelling`)."""
        if not self._tools:  # nothing to rank (its similarity would be an empty array)
            return SearchResult([], False, tuple(dict.fromkeys(terms(query))))
        read_as: dict[str, str] = {}
        if spelling and self._embedder is not None:
            query, read_as = self._speller.read(query, self._embedder.words)
        own = tuple(dict.fromkeys(terms(query)))
        scores = self._bm25(query, own)
        keeps = self._keeps(keep)
        vectors, embedder = self._vectors, self._embedder
        if vectors is None or embedder is None or mode == "bm25" or not query.strip():
            kept = self._best(scores, own, limit, keeps)
            hits = [SearchHit(self._tools[i], round(scores[i], 3)) for i in kept]
            good = bool(kept) and self._coverage(described(query, own), kept[0]) >= GOOD_MATCH
            return SearchResult(hits, good, own, read_as)
        import numpy as np

        # einsum, not ``@``: a matrix-vector product goes to OpenBLAS's threads, 13 ms instead of 0.1 on
        # a loaded machine
        similarity = np.einsum("ij,j->i", vectors, embedder.embed_query(query))
        if mode == "semantic":
            kept = _nearest(similarity, limit, keeps)
            fused = {i: float(similarity[i]) for i in kept}
        else:
            candidates, rows, rest, _ = self._candidates(_Query.of(query, own), scores, similarity, keeps)
            probability = _rerank.probabilities(rows)
            ranked = sorted(range(len(candidates)), key=lambda c: -probability[c])
            fused = {candidates[c]: round(probability[c], 4) for c in ranked}
            kept = [*fused, *rest][:limit]
            fused.update(dict.fromkeys(rest, 0.0))
        hits = [SearchHit(self._tools[i], round(fused[i], 4)) for i in kept]
        good = bool(kept) and _rerank.good_match(
            self._signals(described(query, own), kept[0], float(similarity[kept[0]]))
        )
        return SearchResult(hits, good, own, read_as)

    def match_signals(self, query: str, tool: Tool) -> tuple[float, ...]:
        """What decides whether ``tool``, a search's best hit for ``query``, is a good match: its
        :data:`~toolbridge.catalog._rerank.MATCH_SIGNALS` (similarity 0 without embeddings)."""
        i = self._tools.index(tool)
        similarity = 0.0
        if self._vectors is not None and self._embedder is not None:
            similarity = float(self._vectors[i] @ self._embedder.embed_query(query))
        return self._signals(described(query, tuple(dict.fromkeys(terms(query)))), i, similarity)

    def _signals(self, asked: tuple[str, ...], i: int, similarity: float) -> tuple[float, ...]:
        """The match signals of tool ``i`` for a query whose described terms are ``asked``."""
        unseen = sum(1 for term in asked if term not in self._idf) / (len(asked) or 1)
        return self._coverage(asked, i), similarity, unseen, float(min(len(asked), _rerank.TERMS_COUNTED))

    def rerank_inputs(
        self, query: str, keep: Callable[[Tool], bool] | None = None
    ) -> tuple[list[Tool], list[list[float]], list[Tool]]:
        """What the re-ranking of a fused search sees (``bench/fit_rerank.py`` fits its weights on it):
        the candidates, each one's :data:`~toolbridge.catalog._rerank.FEATURES`, and the fused order
        of them all before the re-ranking. Needs the embeddings (:attr:`semantic`)."""
        import numpy as np

        if self._vectors is None or self._embedder is None:
            raise ValueError("the re-ranking needs the tools' embeddings")
        asked = _Query.of(query)
        similarity = np.einsum("ij,j->i", self._vectors, self._embedder.embed_query(query))
        scores = self._bm25(query, asked.own)
        candidates, rows, _, fused = self._candidates(asked, scores, similarity, self._keeps(keep))
        tools = self._tools
        return [tools[i] for i in candidates], rows, [tools[i] for i in fused]

    def _candidates(
        self,
        query: _Query,
        scores: dict[int, float],
        similarity: Vectors,
        keep: Callable[[int], bool] | None,
    ) -> tuple[list[int], list[list[float]], list[int], list[int]]:
        """The fused search's candidates for re-ranking, their features, the fused ranking's other tools
        in order, and the fused order of all."""
        lexical = self._best(scores, query.own, DEPTH, keep)
        semantic = _nearest(similarity, DEPTH, keep)
        fused = _fuse(lexical, semantic)
        self._weigh_intent(fused, query.text)
        order = sorted(fused, key=lambda i: -fused[i])
        candidates = list(
            dict.fromkeys([*order[: _rerank.CANDIDATES], *lexical[: _rerank.EACH], *semantic[: _rerank.EACH]])
        )
        chosen = set(candidates)
        rest = [i for i in order if i not in chosen]
        rows = self._features(query, candidates, fused, order, scores, lexical, similarity, semantic)
        return candidates, rows, rest, order

    def _features(
        self,
        query: _Query,
        candidates: list[int],
        fused: dict[int, float],
        order: list[int],
        scores: dict[int, float],
        lexical: list[int],
        similarity: Vectors,
        semantic: list[int],
    ) -> list[list[float]]:
        """Each candidate's :data:`~toolbridge.catalog._rerank.FEATURES`, in that order."""
        ranks = [
            {i: 1.0 / r for r, i in enumerate(ranking, start=1)} for ranking in (order, lexical, semantic)
        ]
        best_fused = fused[order[0]] if order else 1.0
        best_score = max((scores[i] for i in lexical[:1]), default=0.0) or 1.0
        best_similarity = float(similarity[semantic[0]] if semantic else similarity.max())
        return [
            [
                fused.get(i, 0.0) / best_fused,
                ranks[0].get(i, 0.0),
                scores.get(i, 0.0) / best_score,
                ranks[1].get(i, 0.0),
                float(similarity[i]) - best_similarity,
                ranks[2].get(i, 0.0),
                *self._fit(query, i),
            ]
            for i in candidates
        ]

    def _fit(self, query: _Query, i: int) -> list[float]:
        """The features of tool ``i`` that compare it with the query itself (the rest compare rankings)."""
        tool, name, kinds, raw = self._tools[i], self._names[i], self._actions[i], self._raw_names[i]
        read_only = tool.annotations.read_only
        marks = tool.connector in self._marks_read_only
        idf, unseen, own = self._idf.get, self._unseen_idf, query.own
        in_name = [t for t in own if t in name or any(s in name for s in synonyms(t))]
        name_idf = sum(idf(t, unseen) for t in name) or 1.0
        return [
            len(name & query.widened) / (len(name) or 1),
            len(name.intersection(own)) / (len(set(own)) or 1),
            self._coverage(query.described, i),
            float(query.wanted == "read" and not read_only and marks),
            float(query.wanted == "write" and read_only),
            float(query.kind is not None and bool(kinds) and query.kind not in kinds),
            float(query.kind is not None and query.kind in kinds),
            float(query.wanted is None and not read_only and marks),
            sum(idf(t, unseen) for t in name if t in query.widened) / name_idf,
            sum(idf(t, unseen) for t in in_name) / (sum(idf(t, unseen) for t in own) or 1.0),
            len(raw & query.written) / (len(raw) or 1),
            query.items * self._id_params[i],
            query.items * float(read_only and not self._id_params[i]),
            float(self._listings[i] and not name.isdisjoint(query.plural)),
            float("admin" in raw and query.written.isdisjoint(_ADMIN)),
        ]

    def _best(
        self, scores: dict[int, float], own: tuple[str, ...], count: int, keep: Callable[[int], bool] | None
    ) -> list[int]:
        """The first ``count`` tools ``keep`` accepts in BM25F's order (:meth:`_rank_key`), without
        ordering every tool that matched a word (hundreds for a common one): those scoring at least the
        ``2 * count``-th best score are ordered first, and all only if too few of them are kept."""

        def key(i: int) -> tuple[float, int, int, str]:
            return self._rank_key(i, scores[i], own)

        if len(scores) > 4 * count:
            # the 2 * count-th best score (a sort in C is quicker than heapq's nlargest here)
            cut = sorted(scores.values(), reverse=True)[2 * count - 1] - 1e-6  # ties at the cut stay in
            pool = sorted((i for i, score in scores.items() if score >= cut), key=key)
            kept = _first(pool, count, keep)
            if len(kept) == count:  # every tool outside the pool ranks after every tool in it
                return kept
        return _first(sorted(scores, key=key), count, keep)

    def _weigh_intent(self, fused: dict[int, float], query: str) -> None:
        """Shrink the fused scores of tools whose read-only annotation disagrees with the query's intent
        (for a read, only in connectors that mark some tools read-only), and of those whose name's verbs
        are of another kind than the query's first word."""
        wanted, kind = intent(query), action(query)
        read = wanted == "read"
        for i in fused:
            tool = self._tools[i]
            disagrees = wanted is not None and tool.annotations.read_only != read
            if disagrees and (not read or tool.connector in self._marks_read_only):
                fused[i] *= 1 - INTENT_PENALTY
            if kind is not None and self._actions[i] and kind not in self._actions[i]:
                fused[i] *= 1 - ACTION_PENALTY

    def _keeps(self, keep: Callable[[Tool], bool] | None) -> Callable[[int], bool] | None:
        return None if keep is None else lambda i: keep(self._tools[i])

    def _bm25(self, query: str, own: tuple[str, ...]) -> dict[int, float]:
        weights = self._query_weights(own, compounds(query))
        scores: dict[int, float] = {}
        for term, weight in weights.items():  # a tight loop: a common word is in hundreds of tools
            factor = weight * self._idf[term]
            tools, saturated = self._postings[term]
            if not scores:
                scores = dict(zip(tools, [factor * s for s in saturated], strict=True))
                continue
            get = scores.get
            for i, s in zip(tools, saturated, strict=True):
                scores[i] = get(i, 0.0) + factor * s
        # a tool whose name is about the query, not only mentions it: each name term is listed once per
        # tool, so counting a tool's appearances counts the query's terms in its name
        named = Counter(itertools.chain.from_iterable(self._named.get(term, ()) for term in weights))
        sizes = self._name_sizes
        for i, held in named.items():
            scores[i] *= 1 + NAME_FIT * held / sizes[i]
        return scores

    def _rank_key(self, index: int, score: float, own: tuple[str, ...]) -> tuple[float, int, int, str]:
        """Best score first; on a tie, more query terms in the name, then the shorter (more general) name."""
        name = self._tools[index].name
        return (-round(score, 9), -len(self._names[index].intersection(own)), len(name), name)

    def _query_weights(self, own: tuple[str, ...], joined: list[str]) -> dict[str, float]:
        weights = {t: 1.0 for t in (*own, *joined) if t in self._postings}
        for term in own:
            for other in synonyms(term):
                if other in self._postings and other not in weights:
                    weights[other] = SYNONYM_WEIGHT
        return weights

    def _coverage(self, own: tuple[str, ...], index: int) -> float:
        """The IDF-weighted share of the query's own terms (or their synonyms) the tool holds."""
        total = matched = 0.0
        for term in own:
            idf = self._idf.get(term, self._unseen_idf)
            total += idf
            if any(self._holds(index, t) for t in (term, *synonyms(term))):
                matched += idf
        return matched / total if total else 0.0

    def _holds(self, index: int, term: str) -> bool:
        """Whether tool ``index`` has ``term`` in any field: its postings list the tools in ascending
        order (one set of terms per tool instead held 3.4 MiB for 2,248 tools)."""
        posting = self._postings.get(term)
        if posting is None:
            return False
        holders = posting[0]
        at = bisect.bisect_left(holders, index)
        return at < len(holders) and holders[at] == index

    def connectors(self, keep: Callable[[Tool], bool] | None = None) -> dict[str, list[str]]:
        """Connector → the words its tool names use most (verbs aside), to tell an agent what it covers.

        Counted once per index for each connector; a connector some of whose tools ``keep`` hides is
        counted again over the others (a "no good match" answer costs one ``keep`` per tool, no more)."""
        covers: dict[str, list[str]] = {}
        for connector, (members, whole) in sorted(self._connector_words.items()):
            kept = members if keep is None else [i for i in members if keep(self._tools[i])]
            if len(kept) == len(members):
                covers[connector] = whole
            elif kept:
                covers[connector] = self._most_used_words(kept)
        return covers

    def _count_connector_words(self) -> None:
        self._name_words = [
            [w for w in tool.operation.split("_") if w not in _VERBS and len(w) > 2] for tool in self._tools
        ]
        """Each tool's name words that say what a connector covers (verbs and short words aside)."""
        members: dict[str, list[int]] = {}
        for i, tool in enumerate(self._tools):
            members.setdefault(tool.connector, []).append(i)
        self._connector_words: dict[str, tuple[list[int], list[str]]] = {}
        """Connector → its tools, and the words their names use most."""
        for connector, tools in members.items():
            self._connector_words[connector] = (tools, self._most_used_words(tools))

    def _most_used_words(self, tools: list[int]) -> list[str]:
        """The eight words ``tools``' names use most, verbs aside; their names' words when all are verbs
        (the quickstart's notes are ``add``, ``list`` and ``delete``: they cover those)."""
        counts = Counter(itertools.chain.from_iterable(self._name_words[i] for i in tools))
        if not counts:
            counts = Counter(w for i in tools for w in self._tools[i].operation.split("_") if w)
        return [w for w, _ in counts.most_common(8)]


def _first(ranked: Iterable[int], limit: int, keep: Callable[[int], bool] | None) -> list[int]:
    return list(itertools.islice((i for i in ranked if keep is None or keep(i)), limit))


def _nearest(similarity: Vectors, count: int, keep: Callable[[int], bool] | None) -> list[int]:
    """The first ``count`` tools ``keep`` accepts among those at least :data:`SEMANTIC_FLOOR` similar to
    the query, most similar first (on a tie, the later tool first); like :meth:`SearchIndex._best`, only
    the ``2 * count`` most similar are ordered unless too few of them are kept."""
    import numpy as np

    above = np.flatnonzero(similarity >= SEMANTIC_FLOOR)
    if len(above) > 4 * count:
        values = similarity[above]
        cut = np.partition(values, len(above) - 2 * count)[len(above) - 2 * count]  # ties at the cut stay
        pool = above[values >= cut]
        kept = _first(pool[np.lexsort((-pool, -similarity[pool]))].tolist(), count, keep)
        if len(kept) == count:  # every tool outside the pool is less similar than every tool in it
            return kept
    return _first(above[np.lexsort((-above, -similarity[above]))].tolist(), count, keep)


def _fuse(lexical: list[int], semantic: list[int]) -> dict[int, float]:
    """Reciprocal rank fusion: each item scores ``weight / (RRF_K + rank)`` in every ranking it is in
    (rank from 1); in BM25F's order first, so ties keep it."""
    fused: dict[int, float] = {}
    for weight, ranking in ((1.0, lexical), (SEMANTIC_WEIGHT, semantic)):
        for rank, i in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + weight / (RRF_K + rank)
    return fused


def _weighted_tf(doc: Mapping[str, list[str]], averages: Mapping[str, float]) -> dict[str, float]:
    """BM25F's pseudo term frequency: each field's count, length-normalised and weighted, summed."""
    total: dict[str, float] = {}
    for part, words in doc.items():
        if not words:
            continue
        weight, b = _FIELDS[part]
        norm = 1 - b + b * len(words) / (averages[part] or 1.0)
        for term, count in Counter(words).items():
            total[term] = total.get(term, 0.0) + weight * count / norm
    return total


_ID = re.compile(r"(?:^|_)(?:[iI][dD]|[sS][iI][dD])$|[a-z0-9](?:Id|ID|Sid|SID)$")
"""An argument that names an identifier: ``id``, ``incident_id``, ``Sid``, ``CallSid``, ``userId``."""


_ADMIN = frozenset({"admin", "admins", "administrator", "administrators", "administration"})
"""Words that ask for an admin tool; without one, a tool named admin_… (org-wide) is second choice."""


def _listing(raw: frozenset[str]) -> bool:
    """Whether a tool's name (its words as written) says it answers with many items: ``list_…`` or a
    plural (``get_eval_runs``)."""
    return "list" in raw or any(plural(word) for word in raw)


def _id_params(tool: Tool) -> int:
    """How many of the tool's required arguments name an identifier (``incident_id``, ``CallSid``)."""
    required = tool.input_schema.get("required")
    return (
        sum(1 for p in required if isinstance(p, str) and _ID.search(p)) if isinstance(required, list) else 0
    )
