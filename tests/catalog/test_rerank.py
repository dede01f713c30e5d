"""The learned re-ranking of fused searches (catalog/_rerank.py): its pieces; what it changes in rankings
over the public APIs is in test_search.py (the labelled tasks' floor, near neighbours told apart)."""

from __future__ import annotations

import math

import pytest

from toolbridge.catalog import Tool, ToolAnnotations
from toolbridge.catalog._rerank import (
    FEATURES,
    GOOD,
    WEIGHTS,
    good_match,
    identifiers,
    probabilities,
    raw_words,
)
from toolbridge.catalog._search import SearchIndex
from toolbridge.catalog._semantic import Embedder
from toolbridge.catalog._words import plurals


def evals_tool(name: str, description: str, *required: str) -> Tool:
    schema = {
        "type": "object",
        "properties": {p: {"type": "string"} for p in required},
        "required": [*required],
    }
    return Tool(f"evals.{name}", "evals", description, schema, annotations=ToolAnnotations(read_only=True))


EVALS = [
    evals_tool("get_eval_run", "Get an evaluation run by ID.", "eval_id", "run_id"),
    evals_tool("get_eval_runs", "Get a list of runs for an evaluation.", "eval_id"),
    evals_tool("get_eval", "Get an evaluation by ID.", "eval_id"),
    evals_tool(
        "get_eval_run_output_items", "Get a list of output items for an evaluation run.", "eval_id", "run_id"
    ),
]


def test_there_is_one_weight_per_feature() -> None:
    assert len(WEIGHTS) == len(FEATURES) and all(math.isfinite(w) for w in WEIGHTS)
    assert any(WEIGHTS), "bench/fit_rerank.py --write puts the fitted weights in catalog/_rerank.py"


def test_probabilities_are_a_softmax_of_the_weighted_features() -> None:
    found = probabilities([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], weights=[2.0, 1.0])
    assert math.isclose(sum(found), 1.0)
    assert found[0] > found[1] > found[2]
    assert math.isclose(found[0] / found[2], math.exp(2.0))
    assert probabilities([[1e6], [0.0]], weights=[1.0]) == [1.0, 0.0]  # no overflow
    assert probabilities([], weights=[1.0]) == []


def test_a_good_match_covers_the_query_or_is_very_similar_to_it() -> None:
    # (coverage, similarity, share of the query's terms no tool holds, how many terms)
    assert good_match((1.0, 0.3, 0.0, 4))  # every word of the query, however phrased
    assert good_match((0.0, 0.9, 0.0, 4))  # no shared word, the same meaning
    assert not good_match((0.0, 0.3, 0.0, 4)) and not good_match((0.3, 0.3, 0.0, 4))
    # a word no tool has ("fax") weighs against; a long request need not cover all of itself
    assert good_match((0.3, 0.4, 0.0, 4)) and not good_match((0.3, 0.4, 0.25, 4))
    assert not good_match((0.2, 0.35, 0.0, 2)) and good_match((0.2, 0.35, 0.0, 12))
    assert not good_match((0.5, 0.3), boundary=(1.0, 1.0, 1.0)) and good_match(
        (0.5, 0.5), boundary=(1.0, 1.0, 1.0)
    )
    with pytest.raises(ValueError, match="shorter"):
        good_match((0.5, 0.5), boundary=GOOD)  # one weight per signal


def test_identifiers_are_words_with_a_digit() -> None:
    assert identifiers("status of run evalrun_9 in eval eval_42") == 2
    assert identifiers("page PSCH1 about incident Q1234 at +14155550100") == 3
    assert identifiers("list the runs of an eval") == 0
    assert identifiers("the v3 API in 2 steps") == 0  # shorter than three characters


def test_raw_words_keep_what_stemming_would_merge() -> None:
    assert raw_words("get_eval_runs") == {"get", "eval", "runs"}
    assert raw_words("getEvalRun") == {"get", "eval", "run"}
    assert raw_words("the runs of an eval") == {"the", "runs", "of", "an", "eval"}


def test_scores_are_the_candidates_probabilities(embedder: Embedder) -> None:
    hits = SearchIndex(EVALS, embedder=embedder).search("the output items of an eval run").hits
    scores = [h.score for h in hits]
    assert hits[0].tool.name == "evals.get_eval_run_output_items"
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-3)  # every tool of this catalog is a candidate


def test_rerank_inputs_are_what_the_search_orders(embedder: Embedder) -> None:
    index = SearchIndex(EVALS, embedder=embedder)
    candidates, rows, fused = index.rerank_inputs("show all the runs of eval eval_42")
    assert {t.name for t in candidates} == {t.name for t in EVALS} == {t.name for t in fused}
    assert all(len(row) == len(FEATURES) for row in rows)
    chances = probabilities(rows)
    best = candidates[max(range(len(candidates)), key=chances.__getitem__)]
    assert index.search("show all the runs of eval eval_42").hits[0].tool is best
    filtered, _, _ = index.rerank_inputs(
        "show all the runs of eval eval_42", keep=lambda t: "runs" not in t.name
    )
    assert "evals.get_eval_runs" not in {t.name for t in filtered}
    with pytest.raises(ValueError, match="embeddings"):
        SearchIndex(EVALS).rerank_inputs("anything")


def test_plurals_are_the_words_that_ask_for_many() -> None:
    assert plurals("which recordings did conference CF77 capture") == {"record"}  # stems, as names have
    assert plurals("the status of this process") == frozenset()  # -ss, -us, -is are no plurals
    assert plurals("show the queries and entries") == {"query", "entry"}


def test_an_admin_tool_is_marked_when_the_request_does_not_say_admin(embedder: Embedder) -> None:
    chat = [
        Tool(f"chat.{name}", "chat", description, {"type": "object"})
        for name, description in (
            ("conversations_rename", "Rename a channel."),
            ("admin_conversations_rename", "Rename a channel in any workspace of the organization."),
        )
    ]
    index = SearchIndex(chat, embedder=embedder)
    column = FEATURES.index("an admin tool (admin in its name) for a request that does not say admin")
    for query, flagged in (
        ("rename channel C012 to ops", {"chat.admin_conversations_rename"}),
        ("as an admin, rename channel C012 to ops", set()),
    ):
        candidates, rows, _ = index.rerank_inputs(query)
        assert {t.name for t, row in zip(candidates, rows, strict=True) if row[column]} == flagged


@pytest.mark.parametrize("mode", ["fused", "semantic", "bm25"])
def test_a_search_of_an_empty_catalog_finds_nothing(embedder: Embedder, mode: str) -> None:
    """A catalog whose last tool went away (its connector lost its upstream): the fused search failed with
    'zero-size array to reduction operation maximum', and so did every unknown tool's call, whose
    answer searches for guesses."""
    result = SearchIndex([], embedder=embedder).search("find a customer", mode=mode)  # type: ignore[arg-type]
    assert (result.hits, result.good) == ([], False)
