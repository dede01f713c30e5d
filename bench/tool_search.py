"""Tool search: how often the right tool is found, how big the answer is, how long a search takes.

The catalog is four large public API documents from ../shared/specs (Slack, Twilio, PagerDuty, OpenAI;
about 1,100 tools) ingested by toolbridge's OpenAPI connector; the tasks are the labelled queries of
tests/catalog/tool_search_queries.tsv (each names the tool or tools that fit, or none). Compared in one
run, on the same tools and queries:

* **toolbridge** — the index behind ``toolbridge.search_tools`` (catalog/_search.py) three ways: BM25F
  alone, the sentence embeddings alone (all-MiniLM-L6-v2, int8 ONNX; ``toolbridge[semantic]``) and
  both fused (the default); answer = the ``search_tools`` JSON an agent gets for 10 hits;
* **old scorer** — toolbridge's previous ranking (name word 3 points, description word 1, ties by
  name), answer as it was then;
* **FastMCP BM25** — FastMCP 4.1.6's ``BM25SearchTransform`` over the same tools (name, description,
  input schema), run in its own venv (bench/.venvs/fastmcp); answer = its search result for 5 hits
  (its default), serialised as it sends it.

Printed per engine: top-1 and top-5 accuracy and MRR@10 over the tasks with a tool, the share of no-tool
tasks answered "no good match" (toolbridge only; the others always return hits), answer bytes (median and
max) and search latency (median and p99, query handling included, in the engine's own process), for all
tasks and for each part of the file (``PARTS``: those the BM25F ranking was tuned on, those added after
that tuning, the first held-out part — development data since 2026-12-04 —, development 2 and 3, and held
out 2 and 3, the parts nothing is tuned or fitted on), for the development parts together and for the
held-out parts together. ``--show-misses`` lists the development parts' misses only. For toolbridge also:
``describe_tool`` answer sizes, index build time (embeddings not cached yet, and cached) and memory added
(RSS of a fresh process, model included) for the catalog and for a doubled catalog (each document loaded
twice under another connector name, ~2,200 tools), and search latency over the doubled one, in wall time
and in the searching thread's CPU time (on a shared machine the wall time is mostly waiting for a core).
Every search timed embeds its query: the embedder's recent queries are forgotten before each (the task
file repeats two queries).

Also the held-out tasks with one seeded typo each, searched with misspelt words read as the catalog's
(catalog/_spelling.py) and as written.

    uv run python bench/tool_search.py [--skip-fastmcp] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _procs import fastmcp_python
from toolbridge import Hub, Principal
from toolbridge.catalog import Tool
from toolbridge.catalog._search import Mode, SearchIndex
from toolbridge.catalog._semantic import EmbeddingCache, load_embedder
from toolbridge.catalog._words import STOP_WORDS
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.surfaces.mcp._search import SEARCH, describe_document, search_answer
from toolbridge.surfaces.mcp._wire import tool_to_wire

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / ".." / "shared" / "specs"
TASKS = ROOT / "tests" / "catalog" / "tool_search_queries.tsv"
DOCUMENTS = {
    "slack": "slack-web.v2.json",
    "twilio": "twilio-api-v2010.json",
    "pagerduty": "pagerduty-rest.json",
    "openai": "openai.yaml",
}

FASTMCP = r"""
import asyncio, json, sys, time
from fastmcp.tools.base import Tool
from fastmcp.server.transforms.search import BM25SearchTransform

catalog, queries = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
tools = [Tool(name=t["name"], description=t["description"], parameters=t["inputSchema"]) for t in catalog]
transform = BM25SearchTransform(max_results=10)

async def main():
    await transform._search(tools, "warm up the index")
    out = []
    for query in queries:
        started = time.perf_counter()
        found = await transform._search(tools, query)
        seconds = time.perf_counter() - started
        top5 = await transform._render_results(found[:5])  # what search_tools sends (max_results=5)
        out.append({"names": [t.name for t in found], "seconds": seconds,
                    "bytes": len(json.dumps(top5, separators=(",", ":")).encode())})
    print(json.dumps(out))

asyncio.run(main())
"""


@dataclass
class Engine:
    name: str
    ranked: list[list[str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    """CPU seconds of the searching thread per query (wall time on a loaded machine is mostly waiting)."""
    sizes: list[int] = field(default_factory=list)
    no_match: list[bool] = field(default_factory=list)


HELD_OUT = ("held out 2", "held out 3")
"""The parts nothing is tuned or fitted on (the first held-out part became development data when the
second was written: the re-ranking's fit reads it)."""
PARTS = {
    "# Added after": "added after",
    "# Held out (": "held out 1 (development since 2026-12-04)",
    "# Development 2": "development 2",
    "# Development 3": "development 3",
    "# Held out 2": HELD_OUT[0],
    "# Held out 3": HELD_OUT[1],
}
"""The file's parts after the first ("tuned on"), by the comment line that starts each."""


def load_tasks() -> tuple[list[tuple[str, set[str]]], list[tuple[str, range]]]:
    """The tasks, and each part of the file: its label and the tasks in it."""
    tasks: list[tuple[str, set[str]]] = []
    starts: list[tuple[str, int]] = [("tuned on", 0)]
    for line in TASKS.read_text(encoding="utf-8").splitlines():
        for mark, label in PARTS.items():
            if line.startswith(mark):
                starts.append((label, len(tasks)))
        if line and not line.startswith("#"):
            query, expected = line.split("\t")
            tasks.append((query, set() if expected == "-" else set(expected.split(","))))
    ends = [start for _, start in starts[1:]] + [len(tasks)]
    return tasks, [(label, range(start, end)) for (label, start), end in zip(starts, ends, strict=True)]


_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _beside(letter: str) -> list[str]:
    """The letters beside ``letter`` on its keyboard row (a finger's slip)."""
    for row in _KEYBOARD:
        at = row.find(letter)
        if at >= 0:
            return [row[j] for j in (at - 1, at + 1) if 0 <= j < len(row)]
    return [letter]


def misspelt(query: str, rng: random.Random) -> str:
    """``query`` with one typo in one of its words of five letters or more (not a stop word): a letter
    dropped, two swapped, one changed for its neighbour on the keyboard, or one added beside it."""
    words = [m for m in re.finditer(r"\b[a-z]{5,}\b", query) if m.group(0) not in STOP_WORDS]
    if not words:
        return query
    match = rng.choice(words)
    word, at = match.group(0), rng.randrange(1, len(match.group(0)) - 1)
    kind = rng.choice(("drop", "swap", "change", "add"))
    if kind == "drop":
        word = word[:at] + word[at + 1 :]
    elif kind == "swap":
        word = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    elif kind == "change":
        word = word[:at] + rng.choice(_beside(word[at])) + word[at + 1 :]
    else:
        word = word[:at] + rng.choice(_beside(word[at])) + word[at:]
    return query[: match.start()] + word + query[match.end() :]


def run_misspelt(
    hub: Hub, tasks: Sequence[tuple[str, set[str]]], held: Sequence[int], modes: Sequence[Mode]
) -> None:
    """The held-out tasks with one seeded typo each, searched with misspelt words read as the catalog's
    (catalog/_spelling.py) and as written."""
    rng = random.Random(20261204)
    typed = [(misspelt(tasks[i][0], rng), tasks[i][1]) for i in held]
    changed = sum(1 for (query, _), i in zip(typed, held, strict=True) if query != tasks[i][0])
    print(
        f"\nheld out 2 and 3 with one typo each ({changed} of {len(typed)} tasks changed; "
        "random.Random(20261204)):"
    )
    every = range(len(typed))
    for mode in modes:
        for spelling in (True, False):
            hub.catalog.spelling = spelling
            engine = run_toolbridge(hub, [q for q, _ in typed], mode)
            how = "misspelt words read as the catalog's" if spelling else "read as written"
            print(report(engine, typed, every, how, False))
    hub.catalog.spelling = True


def build_hub(copies: int = 1) -> Hub:
    hub = Hub()
    for copy in range(copies):
        for name, document in DOCUMENTS.items():
            connector = name if copy == 0 else f"{name}{copy + 1}"
            hub.add_connector(
                OpenAPIConnector.from_spec(connector, SPECS / document, base_url="http://127.0.0.1:9")
            )
    return hub


ENGINES: dict[Mode, str] = {"bm25": "BM25F", "semantic": "semantic", "fused": "fused"}


def run_toolbridge(hub: Hub, queries: Sequence[str], mode: Mode = "fused") -> Engine:
    engine = Engine(f"toolbridge {ENGINES[mode]}")
    hub.catalog.search_mode = mode
    agent = Principal.agent("bench", ["*"])
    hub.search_tools(agent, "warm up the index")
    hub.catalog.wait_for_embeddings()
    embedder = load_embedder()
    for query in queries:
        if embedder is not None:
            embedder.forget_queries()  # every query timed is embedded (the file repeats two)
        started, cpu = time.perf_counter(), time.thread_time()
        answer = search_answer(hub, agent, SEARCH, {"query": query, "limit": 10})
        engine.seconds.append(time.perf_counter() - started)
        engine.cpu.append(time.thread_time() - cpu)
        engine.ranked.append([t["name"] for t in answer["tools"]])
        engine.sizes.append(len(json.dumps(answer, ensure_ascii=False).encode()))
        engine.no_match.append("good_match" in answer)
    return engine


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def run_old_scorer(tools: Sequence[Tool], queries: Sequence[str]) -> Engine:
    """toolbridge's ranking before the index (surfaces/mcp/_search.py until 2026-12), as it was."""
    engine = Engine("old scorer")
    for query in queries:
        started = time.perf_counter()
        words = _words(query)
        scored = []
        for t in tools:
            name = _words(t.name.replace(".", " ").replace("_", " ").replace("-", " "))
            text = _words(t.description)
            score = sum(3.0 if w in name else 1.0 if w in text else 0.0 for w in words)
            if score > 0:
                scored.append((score, t))
        ranked = sorted(scored, key=lambda pair: (-pair[0], pair[1].name))[:10]
        answer = {
            "tools": [
                {"name": t.name, "summary": (t.description.splitlines() or [""])[0][:200], "read_only": False}
                for _, t in ranked
            ]
        }
        engine.seconds.append(time.perf_counter() - started)
        engine.ranked.append([t.name for _, t in ranked])
        engine.sizes.append(len(json.dumps(answer, ensure_ascii=False).encode()))
    return engine


def run_fastmcp(tools: Sequence[Tool], queries: Sequence[str]) -> Engine:
    engine = Engine("FastMCP 4.1.6 BM25")
    catalog = [
        {"name": t.name, "description": t.description, "inputSchema": dict(t.input_schema)} for t in tools
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "catalog.json", Path(tmp) / "queries.json"]
        paths[0].write_text(json.dumps(catalog))
        paths[1].write_text(json.dumps(list(queries)))
        done = subprocess.run(
            [str(fastmcp_python()), "-c", FASTMCP, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"FastMCP run failed: {done.stderr.strip().splitlines()[-1:]}")
    for row in json.loads(done.stdout.strip().splitlines()[-1]):
        engine.ranked.append(row["names"])
        engine.seconds.append(row["seconds"])
        engine.sizes.append(row["bytes"])
    return engine


def build_cost(hub: Hub) -> tuple[int, float, float, float, float]:
    """Tools, median seconds of three BM25F index builds, MiB the BM25F index holds (tracemalloc), and
    with embeddings: seconds of a build with none cached yet and of one with all cached."""
    tools = list(hub.catalog)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        SearchIndex(tools)
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = SearchIndex(tools)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del index
    cold = warm = float("nan")
    embedder = load_embedder()
    if embedder is not None:
        cache = EmbeddingCache()
        started = time.perf_counter()
        SearchIndex(tools, embedder=embedder, cache=cache)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        SearchIndex(tools, embedder=embedder, cache=cache)
        warm = time.perf_counter() - started
    return len(tools), statistics.median(times), held / 2**20, cold, warm


RSS = r"""
import gc, json, re, sys
from toolbridge.catalog import Tool
from toolbridge.catalog._registry import Catalog
from toolbridge.catalog._semantic import release_freed_memory

def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024

catalog = Catalog(semantic=sys.argv[2] == "semantic")
with open(sys.argv[1], encoding="utf-8") as file:
    for row in json.load(file):
        catalog.add(Tool(**row))
gc.collect()
release_freed_memory()
before = rss()
catalog.search("warm up the index")
catalog.wait_for_embeddings()
catalog.search("warm up the fused index")
print(rss() - before)
"""


def memory_added(tools: Sequence[Tool], kind: str) -> float:
    """MiB of RSS a fresh process gains by building the index and answering one search (``kind``
    semantic: the model, its runtime and the embeddings included).

    The process gets the tools from a JSON file, not from the API documents: parsing those leaves
    the heap full of freed holes that the index then fills, so RSS hardly moved for BM25F (0.0-1.6
    MiB for 1,124 tools, whose index holds 5.1-5.7 MiB by tracemalloc) and the fused figure was short
    by as much."""
    rows = [
        {
            "name": t.name,
            "connector": t.connector,
            "description": t.description,
            "title": t.title,
            "input_schema": t.input_schema,
        }
        for t in tools
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tools.json"
        path.write_text(json.dumps(rows, default=dict), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", RSS, str(path), kind],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
    return float(done.stdout.strip().splitlines()[-1])


def model_costs() -> str:
    """Seconds to derive the int8 model (once per machine) and to load it (once per process)."""
    from toolbridge.catalog._quantize import derived_model
    from toolbridge.catalog._semantic import Embedder, packaged_files

    files = packaged_files()
    if files is None:
        return "no model (toolbridge[semantic] is not installed)"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        derived = derived_model(files[0], Path(tmp))
        derive = time.perf_counter() - started
        if derived is None:
            return "the int8 model could not be derived (is onnx installed?)"
        started = time.perf_counter()
        Embedder(derived, files[1])
        load = time.perf_counter() - started
    return (
        f"int8 model derived in {derive:.2f} s (once per machine), loaded in {load:.2f} s (once per process)"
    )


def machine() -> str:
    """The CPU, and whether it has VNNI: the int8 model's matrix products are several times slower
    without it (the query's embedding 8.7 ms CPU on a Zen1 EPYC, 1.5-1.8 ms on a Xeon with VNNI), and
    the fused rankings came out a few tasks apart on the two (bench/README.md)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "CPU unknown"
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    vnni = bool(flags and re.search(r"\b(avx512_vnni|avx_vnni)\b", flags.group(1)))
    cores = len(re.findall(r"^processor\s*:", info, re.M))
    name = model.group(1).strip() if model else "CPU unknown"
    return f"{name}, {cores} cores, {'with' if vnni else 'without'} VNNI"


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def report(
    engine: Engine,
    tasks: Sequence[tuple[str, set[str]]],
    picked: Sequence[int],
    label: str,
    show_misses: bool,
) -> str:
    top1 = top5 = rr = 0.0
    found = [(engine.ranked[i], tasks[i][1]) for i in picked if tasks[i][1]]
    for ranked, expected in found:
        ranks = [i for i, name in enumerate(ranked[:10]) if name in expected]
        top1 += bool(ranks and ranks[0] == 0)
        top5 += bool(ranks and ranks[0] < 5)
        rr += 1 / (ranks[0] + 1) if ranks else 0.0
    n = len(found)
    flags = [engine.no_match[i] for i in picked if not tasks[i][1]] if engine.no_match else []
    no_match = f"{sum(flags)}/{len(flags)}" if flags else "n/a"
    ms = [engine.seconds[i] * 1000 for i in picked]
    sizes = [engine.sizes[i] for i in picked]
    line = (
        f"| {engine.name} | {label} ({n}) | {top1 / n:.1%} | {top5 / n:.1%} | {rr / n:.3f} | {no_match} | "
        f"{statistics.median(sizes):,.0f} / {max(sizes):,} | "
        f"{statistics.median(ms):.2f} / {p99(ms):.2f} |"
    )
    wrongly = sum(engine.no_match[i] for i in picked if tasks[i][1]) if engine.no_match else None
    if wrongly is not None:
        line += f" {wrongly} |"
    else:
        line += " n/a |"
    if show_misses:
        for i in picked:
            (query, expected), ranked = tasks[i], engine.ranked[i]
            if expected and not expected & set(ranked[:5]):
                line += f"\n    miss: {query!r} → {ranked[:3]} (want {sorted(expected)})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-fastmcp", action="store_true")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(machine())
    tasks, parts = load_tasks()
    queries = [q for q, _ in tasks]
    hub = build_hub()
    tools = list(hub.catalog)
    with_tool = sum(1 for _, e in tasks if e)
    without = len(tasks) - with_tool
    print(f"{len(tools)} tools; {len(tasks)} tasks ({with_tool} with a tool, {without} without)\n")
    modes: list[Mode] = ["bm25", "semantic", "fused"] if load_embedder() is not None else ["bm25"]
    if len(modes) == 1:
        print("toolbridge[semantic] is not installed: BM25F only\n")
    hub.search_tools(Principal.agent("bench", ["*"]), "embed the catalog before timing")
    hub.catalog.wait_for_embeddings()
    engines = [run_toolbridge(hub, queries, mode) for mode in modes]
    engines.append(run_old_scorer(tools, queries))
    if not args.skip_fastmcp:
        engines.append(run_fastmcp(tools, queries))
    columns = "tasks (with a tool) | top-1 | top-5 | MRR@10 | no-match flagged | answer bytes median / max"
    print(f"| engine | {columns} | ms median / p99 | tasks with a tool flagged no-match |")
    print("|---|---|---|---|---|---|---|---|---|")
    developed = [i for label, picked in parts if label not in HELD_OUT for i in picked]
    held = [i for label, picked in parts if label in HELD_OUT for i in picked]
    rows = [
        ("all", range(len(tasks))),
        *parts,
        ("development (all but the held-out parts)", developed),
        ("held out 2 and 3", held),
    ]
    for engine in engines:
        for label, picked in rows:
            # misses are listed for the development parts only: the held-out tasks stay unread
            misses = args.show_misses and label.startswith("development (")
            print(report(engine, tasks, picked, label, misses))
    run_misspelt(hub, tasks, held, modes)
    print()
    full = [len(json.dumps(tool_to_wire(t), ensure_ascii=False).encode()) for t in tools]
    compact = [len(json.dumps(describe_document(t), ensure_ascii=False).encode()) for t in tools]
    spans = [f"{statistics.median(v):,.0f} / {p99(v):,} / {max(v):,}" for v in (compact, full)]
    print(f"describe_tool bytes, median / p99 / max: compact {spans[0]}; full=true {spans[1]}")
    for copies in (1, 2):
        copied = build_hub(copies)
        count, seconds, mib, cold, warm = build_cost(copied)
        print(
            f"index build, {count:,} tools: BM25F {seconds:.3f} s median of 3 ({mib:.1f} MiB held); "
            f"with embeddings {cold:.2f} s none cached, {warm:.3f} s all cached"
        )
        added = {kind: memory_added(list(copied.catalog), kind) for kind in ("bm25", *modes[1:2])}
        print("  memory added (RSS): " + ", ".join(f"{k} {v:.1f} MiB" for k, v in added.items()))
    if len(modes) > 1:
        print(model_costs())
    big = build_hub(2)
    embedder = load_embedder()
    if embedder is not None:
        ms = []
        for query in queries:
            embedder.forget_queries()
            started = time.perf_counter()
            embedder.embed_query(query)
            ms.append((time.perf_counter() - started) * 1000)
        print(f"query embedding alone: {statistics.median(ms):.2f} ms median, {p99(ms):.2f} ms p99")
    for mode in modes:
        big_engine = run_toolbridge(big, queries, mode)
        ms = [s * 1000 for s in big_engine.seconds]
        cpu = [s * 1000 for s in big_engine.cpu]
        print(
            f"search over {len(big.catalog):,} tools, {mode}: {statistics.median(ms):.2f} ms median, "
            f"{p99(ms):.2f} ms p99; CPU {statistics.median(cpu):.2f} ms median, {p99(cpu):.2f} ms p99"
        )
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    sys.exit(main())
