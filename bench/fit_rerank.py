"""Fit the re-ranking of fused tool searches (catalog/_rerank.py) on the labelled development tasks.

Reads tests/catalog/tool_search_queries.tsv, keeps the development parts (every part but
bench/tool_search.py's ``HELD_OUT``, which are never read here), asks toolbridge's index for each task's
candidates and their features (``SearchIndex.rerank_inputs``), and fits a conditional logit model — a
softmax over each task's candidates, the right tools sharing the target — with an L2 penalty on
standardised features, by Newton steps with a backtracking line search. Prints a repeated 5-fold
cross-validation (top-1 and MRR@10 of the fused ranking against the re-ranked one, on tasks the fit did
not see), the fitted weights per feature, and the ``WEIGHTS`` tuple for catalog/_rerank.py (``--write``
puts it there).

    uv run python bench/fit_rerank.py [--penalty 3] [--repeats 10] [--write]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tool_search import HELD_OUT, build_hub, load_tasks
from toolbridge.catalog._rerank import FEATURES, GOOD, good_match, probabilities
from toolbridge.catalog._search import SearchIndex
from toolbridge.catalog._semantic import EmbeddingCache, load_embedder

PENALTY = 3.0
"""The L2 penalty on standardised weights the constants in catalog/_rerank.py are fitted with."""
RERANK = Path(__file__).resolve().parents[1] / "src" / "toolbridge" / "catalog" / "_rerank.py"


@dataclass
class Task:
    query: str
    part: str
    candidates: list[str]
    fused: list[str]
    features: np.ndarray
    right: np.ndarray
    """1 for each candidate that is a right tool."""


@dataclass
class Match:
    has_tool: bool
    signals: np.ndarray
    """The best candidate's ``MATCH_SIGNALS``."""


def collect() -> tuple[list[Task], list[tuple[str, bool]], SearchIndex]:
    """The development tasks with a tool, each with its candidates (those whose candidates miss every
    right tool are left out: no ordering of them could help); every development task's query and
    whether it has a tool; and the index."""
    embedder = load_embedder()
    if embedder is None:
        raise SystemExit("the re-ranking needs toolbridge[semantic] (the sentence embeddings)")
    tasks, parts = load_tasks()
    index = SearchIndex(list(build_hub().catalog), embedder=embedder, cache=EmbeddingCache())
    out, missing, queries = [], 0, []
    for label, picked in parts:
        if label in HELD_OUT:
            continue
        for i in picked:
            query, expected = tasks[i]
            queries.append((query, bool(expected)))
            if not expected:
                continue
            candidates, rows, fused = index.rerank_inputs(query)
            names = [t.name for t in candidates]
            right = np.array([float(n in expected) for n in names])
            if not right.any():
                missing += 1
                continue
            out.append(Task(query, label, names, [t.name for t in fused], np.array(rows, float), right))
    print(f"{len(out)} development tasks with a right tool among the candidates ({missing} without)")
    return out, queries, index


def match_signals(
    index: SearchIndex, queries: Sequence[tuple[str, bool]], weights: Sequence[float]
) -> list[Match]:
    """Each query's best candidate under ``weights``: its coverage and similarity (queries with no
    candidate at all are left out: they are answered "no good match" whatever the boundary)."""
    out = []
    for query, has_tool in queries:
        candidates, rows, _ = index.rerank_inputs(query)
        if candidates:
            chances = probabilities(rows, weights)
            best = candidates[max(range(len(candidates)), key=chances.__getitem__)]
            out.append(Match(has_tool, np.array(index.match_signals(query, best))))
    return out


def fit_boundary(matches: Sequence[Match], penalty: float = 1.0) -> tuple[float, ...]:
    """A logistic regression of having a tool on the ``MATCH_SIGNALS``, cut where the share of no-tool
    tasks flagged plus the share of the others not flagged is largest: ``GOOD``."""
    x = np.array([m.signals for m in matches])
    y = np.array([float(m.has_tool) for m in matches])
    mean, spread = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mean) / spread]
    w = np.zeros(z.shape[1])
    ridge = penalty * np.diag([0.0] + [1.0] * x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(z @ w)))
        step = np.linalg.solve((z * (p * (1 - p))[:, None]).T @ z + ridge, z.T @ (p - y) + ridge @ w)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    score = z @ w
    best, cut = -1.0, 0.0
    for candidate in np.unique(score):
        flagged = score < candidate
        balanced = flagged[y == 0].mean() + (~flagged[y == 1]).mean()
        if balanced > best:
            best, cut = balanced, float(candidate)
    scale = w[1:] / spread
    return (*(float(s) for s in scale), cut - float(w[0]) + float(scale @ mean))


def flagged(matches: Sequence[Match], boundary: Sequence[float]) -> tuple[int, int]:
    """No-tool tasks flagged "no good match", and tasks with a tool flagged."""
    bad = [not good_match(m.signals, boundary=boundary) for m in matches]
    return (
        sum(b for b, m in zip(bad, matches, strict=True) if not m.has_tool),
        sum(b for b, m in zip(bad, matches, strict=True) if m.has_tool),
    )


def cross_validate_boundary(matches: Sequence[Match], repeats: int, skipped: int) -> None:
    nones = sum(1 for m in matches if not m.has_tool) + skipped
    tools = sum(1 for m in matches if m.has_tool)
    now = flagged(matches, GOOD)
    print(
        f"no good match, today's boundary {GOOD}: no-tool tasks flagged {now[0] + skipped} of {nones}, "
        f"tasks with a tool flagged {now[1]} of {tools}"
    )
    results = []
    for repeat in range(repeats):
        order = list(range(len(matches)))
        random.Random(repeat).shuffle(order)
        total = [0, 0]
        for fold in range(5):
            held = set(order[fold::5])
            boundary = fit_boundary([matches[i] for i in order if i not in held])
            counted = flagged([matches[i] for i in sorted(held)], boundary)
            total = [total[0] + counted[0], total[1] + counted[1]]
        results.append(total)
    print(
        f"fitted boundary, 5-fold cross-validation x {repeats}: no-tool tasks flagged "
        f"{statistics.mean(r[0] for r in results) + skipped:.1f} of {nones}, tasks with a tool flagged "
        f"{statistics.mean(r[1] for r in results):.1f} of {tools}"
    )


def _standardised(tasks: Sequence[Task]) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Each task's features standardised over all tasks, its target distribution, and the spread."""
    stacked = np.vstack([t.features for t in tasks])
    mean, spread = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    return [(t.features - mean) / spread for t in tasks], [t.right / t.right.sum() for t in tasks], spread


def _loss(xs: Sequence[np.ndarray], targets: Sequence[np.ndarray], w: np.ndarray, penalty: float) -> float:
    """The penalised negative log-likelihood of standardised weights ``w``."""
    total = 0.5 * penalty * float(w @ w)
    for x, target in zip(xs, targets, strict=True):
        s = x @ w
        top = s.max()
        total += top + np.log(np.exp(s - top).sum()) - float(target @ s)
    return total


def excess_loss(tasks: Sequence[Task], weights: Sequence[float], penalty: float = PENALTY) -> float:
    """How much worse raw-feature ``weights`` fit ``tasks`` than the fit made now (0 for that fit):
    near 0 when they are the fit of these features, more when a feature changed since they were fitted."""
    xs, targets, spread = _standardised(tasks)
    _, best = fit(tasks, penalty)
    return _loss(xs, targets, np.asarray(weights) * spread, penalty) - _loss(xs, targets, best, penalty)


def fit(tasks: Sequence[Task], penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights for the raw features (standardisation folded in) and for the standardised ones."""
    xs, targets, spread = _standardised(tasks)

    def loss(w: np.ndarray) -> float:
        return _loss(xs, targets, w, penalty)

    w = np.zeros(len(spread))
    current = loss(w)
    for _ in range(100):
        gradient, hessian = penalty * w, penalty * np.eye(len(w))
        for x, target in zip(xs, targets, strict=True):
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            gradient = gradient - x.T @ (target - p)
            mean_x = x.T @ p
            hessian = hessian + x.T @ (x * p[:, None]) - np.outer(mean_x, mean_x)
        step = np.linalg.solve(hessian, gradient)
        size, trial = 1.0, loss(w - step)
        while trial > current and size > 1e-6:
            size /= 2
            trial = loss(w - size * step)
        w = w - size * step
        converged = current - trial < 1e-9
        current = trial
        if converged:
            break
    return w / spread, w


def ranked(task: Task, weights: np.ndarray) -> list[str]:
    order = np.argsort(-(task.features @ weights), kind="stable")
    return [task.candidates[j] for j in order]


def counts(tasks: Sequence[Task], rankings: Sequence[list[str]]) -> tuple[int, float]:
    """Top-1 count and MRR@10."""
    first, rr = 0, 0.0
    for task, ranking in zip(tasks, rankings, strict=True):
        ranks = [k for k, name in enumerate(ranking[:10], start=1) if task.right[task.candidates.index(name)]]
        first += bool(ranks and ranks[0] == 1)
        rr += 1 / ranks[0] if ranks else 0.0
    return first, rr / len(tasks)


def fused_ranking(task: Task) -> list[str]:
    return [n for n in task.fused if n in task.candidates]


def cross_validate(tasks: Sequence[Task], penalty: float, repeats: int) -> None:
    base = counts(tasks, [fused_ranking(t) for t in tasks])
    print(
        f"fused ranking: top-1 {base[0]} of {len(tasks)} ({base[0] / len(tasks):.1%}), MRR@10 {base[1]:.3f}"
    )
    firsts, mrrs = [], []
    by_part: dict[str, list[int]] = {}
    for repeat in range(repeats):
        order = list(range(len(tasks)))
        random.Random(repeat).shuffle(order)
        first, rr = 0, 0.0
        for fold in range(5):
            held = set(order[fold::5])
            weights, _ = fit([tasks[i] for i in order if i not in held], penalty)
            seen = [tasks[i] for i in sorted(held)]
            f, m = counts(seen, [ranked(t, weights) for t in seen])
            first, rr = first + f, rr + m * len(seen)
            for t in seen:
                by_part.setdefault(t.part, []).append(int(counts([t], [ranked(t, weights)])[0]))
        firsts.append(first)
        mrrs.append(rr / len(tasks))
    mean = statistics.mean(firsts)
    print(
        f"re-ranked, 5-fold cross-validation x {repeats} (penalty {penalty}): top-1 {mean:.1f} "
        f"({mean / len(tasks):.1%}, sd {statistics.pstdev(firsts):.1f}, {min(firsts)}-{max(firsts)}), "
        f"MRR@10 {statistics.mean(mrrs):.3f}"
    )
    for part, hits in by_part.items():
        tasks_in = [t for t in tasks if t.part == part]
        before = counts(tasks_in, [fused_ranking(t) for t in tasks_in])[0]
        print(f"  {part}: fused {before} of {len(tasks_in)}, re-ranked {sum(hits) / repeats:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--penalty", type=float, default=PENALTY, help="L2 penalty on standardised weights")
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the 5-fold cross-validation")
    parser.add_argument(
        "--write", action="store_true", help="put the fitted WEIGHTS and GOOD into catalog/_rerank.py"
    )
    args = parser.parse_args()
    tasks, queries, index = collect()
    cross_validate(tasks, args.penalty, args.repeats)
    weights, standardised = fit(tasks, args.penalty)
    in_sample = counts(tasks, [ranked(t, weights) for t in tasks])
    print(f"fitted on all {len(tasks)}: top-1 in sample {in_sample[0]}, MRR@10 {in_sample[1]:.3f}")
    for name, raw, std in zip(FEATURES, weights, standardised, strict=True):
        print(f"  {std:+7.3f} (standardised)  {raw:+9.4f}  {name}")
    block = "WEIGHTS = (\n" + "".join(f"    {w:.6g},\n" for w in weights) + ")"
    print(block)
    matches = match_signals(index, queries, weights)
    cross_validate_boundary(matches, args.repeats, len(queries) - len(matches))
    good = "GOOD = (" + ", ".join(f"{b:.6g}" for b in fit_boundary(matches)) + ")"
    print(good)
    if args.write:
        text = RERANK.read_text(encoding="utf-8")
        for pattern, replacement in (
            (r"^WEIGHTS = \([^)]*\)(?: \* len\(FEATURES\))?", block),
            (r"^GOOD = \([^)]*\)", good),
        ):
            text, found = re.subn(pattern, replacement, text, count=1, flags=re.M)
            if not found:
                raise SystemExit(f"no {replacement.split()[0]} = (...) in {RERANK}")
        RERANK.write_text(text, encoding="utf-8")
        print(f"written to {RERANK}")


if __name__ == "__main__":
    main()
