"""The re-ranking's constants (catalog/_rerank.WEIGHTS) are the fit of today's features: a feature
changed or added without ``bench/fit_rerank.py --write`` shows as a fit worse than one made now."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from toolbridge.catalog._rerank import WEIGHTS
from toolbridge.catalog._semantic import load_embedder

BENCH = Path(__file__).resolve().parents[2] / "bench"


def fitting() -> ModuleType:
    """bench/fit_rerank.py, the fit itself (not copied here)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("fit_rerank")
    finally:
        sys.path.remove(str(BENCH))


def test_the_weights_are_the_fit_of_todays_features() -> None:
    if load_embedder() is None:
        pytest.skip("toolbridge[semantic] is not installed (make env installs it): no re-ranking to check")
    fit_rerank = fitting()
    tasks, _, _ = fit_rerank.collect()
    assert len(tasks) > 500
    # 0 on the machine that fitted them; ~0.02 for the embeddings' noise across CPUs; 2.5-100 with one
    # feature's weight zeroed (a feature changed since), 0.1-2.3 with one weight 20% off
    assert fit_rerank.excess_loss(tasks, WEIGHTS) < 1.0, "run: uv run python bench/fit_rerank.py --write"
