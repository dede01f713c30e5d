"""Semantic tool search (``toolbridge[semantic]``): the packaged model, the embedding cache, the fusion
with BM25F, and BM25F alone when the extra is missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests._patience import patience

from toolbridge import Hub, Principal
from toolbridge.catalog import Catalog, Tool, ToolAnnotations
from toolbridge.catalog._quantize import DERIVATION, cache_folder
from toolbridge.catalog._rerank import good_match
from toolbridge.catalog._search import SearchIndex
from toolbridge.catalog._semantic import (
    MAX_TOKENS,
    MODEL_ID,
    Embedder,
    EmbeddingCache,
    first_sentence,
    packaged_files,
    tool_text,
)
from toolbridge.catalog._wordpiece import WordPiece
from toolbridge.surfaces._tool_search import search_document


def tool(name: str, description: str) -> Tool:
    return Tool(name, name.split(".")[0], description, {"type": "object", "properties": {}})


ZOO = [
    tool("zoo.feed_animals", "Give food to the animals in an enclosure."),
    tool("zoo.sell_tickets", "Sell entry tickets to visitors."),
    tool("zoo.clean_cage", "Clean an enclosure."),
]


def test_the_packaged_model_embeds_meaning(embedder: Embedder) -> None:
    vectors = embedder.embed(["post a chat message", "send a message to a channel", "delete a phone number"])
    assert vectors.shape == (3, 384)
    assert abs(float(vectors[0] @ vectors[0]) - 1) < 1e-5  # unit length
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2


def test_the_int8_model_is_derived_once_and_embeds_as_the_packaged_one_does(embedder: Embedder) -> None:
    assert embedder.model_id == f"{MODEL_ID}/{DERIVATION}"  # make env installs onnx, which derives it
    assert [p.name for p in cache_folder().glob(f"*{DERIVATION}.onnx")]
    model, tokenizer = packaged_files()
    packaged = Embedder(model, tokenizer)  # the file as shipped: float32 matrix products
    texts = ["post a chat message", "slack: users lookup by email. Find a user with an email address."]
    agreement = (packaged.embed(texts) * embedder.embed(texts)).sum(axis=1)
    assert agreement.min() > 0.98, agreement


def test_a_text_gets_the_same_vector_whatever_is_embedded_beside_it(embedder: Embedder) -> None:
    # the int8 model scales activations per run: texts are embedded alone, as the query is
    text = "slack: users lookup by email. Find a user with an email address."
    others = ["post a chat message", "a much longer text " * 12, "delete a phone number"]
    alone = embedder.embed([text])[0]
    assert (embedder.embed([*others, text])[3] == alone).all()
    assert (embedder.embed_query(text) == alone).all()


def test_a_query_asked_again_is_answered_without_running_the_model(
    embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, runs = embedder._session, []

    class Counting:
        def run(self, *args: object) -> object:
            runs.append(args)
            return session.run(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder, "_session", Counting())
    embedder.forget_queries()
    first = embedder.embed_query("page the on-call engineer")
    assert embedder.embed_query("page the on-call engineer") is first and len(runs) == 1
    assert not first.flags.writeable  # shared by every search that asks the same
    # a tool's text is embedded every time (the embedding cache keeps those)
    assert (embedder.embed(["page the on-call engineer"])[0] == first).all() and len(runs) == 2
    embedder.forget_queries()
    assert (embedder.embed_query("page the on-call engineer") == first).all() and len(runs) == 3


def test_the_tokenizer_gives_the_ids_the_tokenizers_package_gives() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    files = packaged_files()
    if files is None:
        pytest.skip("toolbridge[semantic] is not installed (make env installs it)")
    reference = tokenizers.Tokenizer.from_file(str(files[1]))
    reference.no_padding()  # the file asks for 128 ids whatever the text
    reference.enable_truncation(max_length=MAX_TOKENS)
    ours = WordPiece(files[1], max_length=MAX_TOKENS)
    texts = [
        "slack: users lookup by email. Find a user with an email address.",
        "twilio: list IncomingPhoneNumber resources (v2010)—for an AccountSid; e.g. AC123/Numbers.json",
        "Café naïve İstanbul 東京 tab\there\x0bvt\u00a0nbsp \u2028 x\u200by 😀 [SEP] a--b don't",
        "supercalifragilisticexpialidocious" * 4,
        "word " * 100,
        "",
    ]
    for text in texts:
        assert ours.ids(text) == reference.encode(text).ids, text


def test_a_tool_is_embedded_by_its_name_and_first_sentence() -> None:
    long = tool("zoo.feed_animals", "Give food to the animals. Food is kept in store B.\n\nAnimals: all.")
    assert tool_text(long) == "zoo: feed animals. Give food to the animals."
    assert first_sentence("Lists the v1.2 items.  More text.") == "Lists the v1.2 items."
    assert first_sentence("No full stop") == "No full stop"


def test_a_catalog_embeds_in_the_background_then_fuses(embedder: Embedder, tmp_path: Path) -> None:
    catalog = Catalog(embedding_cache=EmbeddingCache(tmp_path / "embeddings.npz"))
    for t in ZOO:
        catalog.add(t)
    catalog.search("meals for the beasts")  # answered at once (BM25F alone until the vectors are made)
    assert catalog.wait_for_embeddings(patience(120))
    assert catalog._index().semantic
    assert catalog.search("meals for the beasts").hits[0].tool.name == "zoo.feed_animals"
    catalog.add(tool("zoo.walk_dogs", "Take the dogs out for a walk."))
    catalog.search("exercise the puppies")  # a new index; its one new tool is embedded in the background
    catalog.add(tool("zoo.paint_fence", "Paint the fence around the enclosure."))  # changed again meanwhile
    assert catalog.wait_for_embeddings(patience(120))
    assert catalog._index().semantic and len(catalog._index()) == 5
    assert catalog.search("exercise the puppies").hits[0].tool.name == "zoo.walk_dogs"
    waiting = Catalog(embedding_cache=EmbeddingCache(tmp_path / "embeddings.npz"), embed_in_background=False)
    for t in [*ZOO, tool("zoo.walk_dogs", "Take the dogs out for a walk.")]:
        waiting.add(t)
    assert waiting.search("exercise the puppies").hits[0].tool.name == "zoo.walk_dogs"  # built and fused
    assert waiting._index().semantic


def many_tools(count: int) -> list[Tool]:
    """Tools with texts of their own (each needs its own run of the model)."""
    return [tool(f"zoo.task_{n}", f"Look after enclosure {n} of section {n % 7}.") for n in range(count)]


def test_an_embedding_asked_to_stop_keeps_what_it_made(embedder: Embedder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "embeddings.npz")
    texts = [tool_text(t) for t in many_tools(40)]
    asked = iter([False, False, True])  # stop at the third check
    assert cache.fill(embedder, texts, stop=lambda: next(asked)) is False
    assert len(cache) == 32  # two steps of 16, saved
    assert len(EmbeddingCache(tmp_path / "embeddings.npz").missing(embedder, texts)) == 8
    assert cache.fill(embedder, texts) is True and not cache.missing(embedder, texts)


@pytest.mark.anyio
async def test_a_hub_stops_its_background_embedding_when_it_closes(
    embedder: Embedder, tmp_path: Path
) -> None:
    catalog = Catalog(embedding_cache=EmbeddingCache(tmp_path / "embeddings.npz"))
    for t in many_tools(400):
        catalog.add(t)
    hub = Hub(catalog=catalog)
    async with hub:
        catalog.search("feed the animals")  # starts embedding 400 tools in a thread
    assert not catalog.embedding_pending  # stopped (or done) before the hub's exit returned
    if catalog.embeddings_missing():  # stopped part-way: the next search embeds the rest
        assert not catalog._index().semantic
    assert catalog.wait_for_embeddings(patience(120))
    assert catalog.embeddings_missing() == 0 and catalog._index().semantic


def test_a_process_that_exits_while_tools_are_embedded_exits_cleanly(
    embedder: Embedder, tmp_path: Path
) -> None:
    """The embedding thread is stopped before the interpreter exits: a process that left it running inside
    the runtime aborted ("terminate called without an active exception", status 134)."""
    code = textwrap.dedent(
        f"""
        import pathlib, time
        from toolbridge.catalog import Catalog, Tool
        from toolbridge.catalog._semantic import EmbeddingCache
        saved = pathlib.Path({str(tmp_path / "embeddings.npz")!r})
        catalog = Catalog(embedding_cache=EmbeddingCache(saved))
        for n in range(3000):
            catalog.add(Tool(f"zoo.task_{{n}}", "zoo", f"Look after enclosure {{n}}.", {{"type": "object"}}))
        catalog.search("feed the animals")
        while not saved.exists() and catalog.embedding_pending:  # until the thread is well into its work
            time.sleep(0.02)
        print(catalog.embedding_pending)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
    assert "terminate" not in done.stderr


def test_fusion_finds_a_tool_that_shares_no_word_with_the_query(embedder: Embedder) -> None:
    index = SearchIndex(ZOO, embedder=embedder)
    assert index.search("meals for the beasts", mode="bm25").hits == []
    found = index.search("meals for the beasts")
    assert found.hits[0].tool.name == "zoo.feed_animals"
    # sharing no word, it is a good match only if very similar (0.48 is not: catalog/_rerank.GOOD)
    signals = index.match_signals("meals for the beasts", found.hits[0].tool)
    assert signals[0] == 0.0 and found.good == good_match(signals)
    assert index.search("meals for the beasts", mode="semantic").hits[0].tool.name == "zoo.feed_animals"
    assert index.search("buy an admission pass").hits[0].tool.name == "zoo.sell_tickets"
    assert index.search("clean an enclosure").hits[0].tool.name == "zoo.clean_cage"  # BM25F still counts
    unrelated = index.search("file a tax return")
    assert not unrelated.good


def test_a_query_asking_to_read_prefers_a_read_only_tool_and_one_asking_to_act_the_other(
    embedder: Embedder,
) -> None:
    # the same two tools with the read-only annotation on one, then on the other: without the query's
    # intent the rankings would not depend on it, so one of the two catalogs would fail
    schema = {"type": "object", "properties": {}}
    for read_only in ("desk.widget_a", "desk.widget_b"):
        tools = [
            Tool(
                name,
                "desk",
                "Widget settings.",
                schema,
                annotations=ToolAnnotations(read_only=name == read_only),
            )
            for name in ("desk.widget_a", "desk.widget_b")
        ]
        index = SearchIndex(tools, embedder=embedder)
        assert index.search("what are the widget settings").hits[0].tool.name == read_only
        assert index.search("please change the widget settings").hits[0].tool.name != read_only


def test_a_read_query_leaves_alone_the_tools_of_a_connector_that_marks_none_read_only(
    embedder: Embedder,
) -> None:
    schema = {"type": "object", "properties": {}}
    marked = Tool(
        "desk.widget_a", "desk", "Widget settings.", schema, annotations=ToolAnnotations(read_only=True)
    )
    changes = Tool("desk.widget_b", "desk", "Widget settings.", schema)
    unmarked = Tool("box.widget_c", "box", "Settings of a widget and of other things.", schema)  # e.g. MCP
    index = SearchIndex([marked, changes, unmarked], embedder=embedder)
    neutral = [h.tool for h in index.search("widget settings").hits]
    assert neutral.index(changes) < neutral.index(unmarked)  # so shrinking both would keep this order
    read = [h.tool for h in index.search("what are the widget settings").hits]
    assert read[0] is marked and read.index(unmarked) < read.index(changes)


def test_the_kind_of_action_a_query_names_prefers_tools_named_by_a_verb_of_that_kind(
    embedder: Embedder,
) -> None:
    # add_widget_row shares more of the query's words ("release a phone number I own" ranked
    # create_incoming_phone_number above delete_incoming_phone_number), but "drop" is a delete
    schema = {"type": "object", "properties": {}}
    shares = Tool("desk.add_widget_row", "desk", "A row of a widget.", schema)
    deletes = Tool("desk.delete_widget", "desk", "A widget.", schema)
    index = SearchIndex([shares, deletes], embedder=embedder)
    assert index.search("the widget row").hits[0].tool is shares  # no verb: the words decide
    assert index.search("drop the widget row").hits[0].tool is deletes


def test_filters_apply_to_both_rankings(embedder: Embedder) -> None:
    index = SearchIndex(ZOO, embedder=embedder)
    found = index.search("meals for the beasts", keep=lambda t: t.name != "zoo.feed_animals")
    assert "zoo.feed_animals" not in [h.tool.name for h in found.hits]


def test_embeddings_are_cached_by_definition_and_kept_in_a_file(embedder: Embedder, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "embeddings.npz"
    cache = EmbeddingCache(path)
    first = SearchIndex(ZOO, embedder=embedder, cache=cache)
    assert len(cache) == 3 and path.is_file()
    reopened = EmbeddingCache(path)  # a restart: the file holds every vector
    again = SearchIndex(ZOO, embedder=embedder, cache=reopened)
    assert len(reopened) == 3
    assert [h.tool.name for h in again.search("meals for the beasts").hits] == [
        h.tool.name for h in first.search("meals for the beasts").hits
    ]
    changed = [*ZOO[:2], tool("zoo.clean_cage", "Hose down an enclosure.")]  # one definition changed
    SearchIndex(changed, embedder=embedder, cache=reopened)
    assert len(reopened) == 4  # only the changed tool was embedded again
    assert tool_text(changed[2]) != tool_text(ZOO[2])


def test_a_cache_file_from_before_float16_vectors_is_not_loaded(embedder: Embedder, tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "embeddings.npz"
    texts = [tool_text(t) for t in ZOO]
    EmbeddingCache(path).fill(embedder, texts)
    assert EmbeddingCache(path).missing(embedder, texts) == []
    with np.load(path) as stored:
        keys, vectors = stored["keys"], stored["vectors"]
    np.savez(path, keys=keys, vectors=vectors.astype(np.float32))  # as the cache wrote it before
    assert EmbeddingCache(path).missing(embedder, texts) == texts  # embedded again, not kept twice


def test_without_the_extra_search_is_bm25_alone() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["onnxruntime"] = None  # as if toolbridge[semantic] were not installed
        from toolbridge.catalog import Catalog, Tool, ToolAnnotations
        from toolbridge.catalog._semantic import load_embedder
        catalog = Catalog()
        catalog.add(Tool("mail.send", "mail", "Send an email.", {"type": "object"}))
        found = catalog.search("send an email")
        assert load_embedder() is None and not catalog._index().semantic
        print(found.hits[0].tool.name, found.good)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mail.send", "True"]


def test_a_configured_hub_keeps_embeddings_beside_its_file_and_can_turn_them_off(
    embedder: Embedder, tmp_path: Path
) -> None:
    spec = Path(__file__).parents[1] / "specs" / "incidents.json"
    config = tmp_path / "toolbridge.yaml"
    connector = (
        f"connectors:\n  desk:\n    kind: openapi\n    spec: {spec}\n    description: Our incident desk\n"
    )
    config.write_text(connector, encoding="utf-8")
    hub = Hub.from_file(config)
    answer = search_document(hub, Principal.agent("a", ["*"]), "book a flight to Paris")
    assert hub.catalog.wait_for_embeddings(patience(120))
    assert (tmp_path / ".toolbridge" / "cache" / "embeddings.npz").is_file()
    assert answer["connectors"][0]["description"] == "Our incident desk"  # the operator's line wins
    config.write_text(connector + "search:\n  semantic: false\n  cache: false\n", encoding="utf-8")
    plain = Hub.from_file(config)
    plain.search_tools(Principal.agent("a", ["*"]), "list incidents")
    assert plain.catalog.embedding_cache is None and not plain.catalog._index().semantic
