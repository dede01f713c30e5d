"""Fixtures shared by the catalog's tests."""

from __future__ import annotations

import pytest

from toolbridge.catalog._semantic import Embedder, load_embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The packaged sentence-embedding model (skips when ``toolbridge[semantic]`` is missing)."""
    loaded = load_embedder()
    if loaded is None:
        pytest.skip("toolbridge[semantic] is not installed (make env installs it)")
    return loaded
