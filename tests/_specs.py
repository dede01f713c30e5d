"""Where the tests find the vendors' OpenAPI documents, which are not part of the repository.

The real public API descriptions (PagerDuty, Twilio, Slack, OpenAI …, listed with their sources and
licences in ``SOURCES.tsv`` beside them) live in ``$TOOLBRIDGE_SPECS`` or, by default, in
``../shared/specs`` next to the checkout (CI has them there). Some have no licence that allows
redistribution, so they are never copied in. A test over the real corpus calls :func:`vendor_spec` and
skips, naming what is missing, in a clone with nothing beside it — or fails under
``TOOLBRIDGE_REQUIRE_SPECS=1`` (CI). Tests that need only *some* document use the small ones written for
the tests in ``tests/specs``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
OWN = ROOT / "tests" / "specs"
"""Documents written for the tests (part of the repository)."""
ENV = "TOOLBRIDGE_SPECS"


def vendor_specs() -> Path:
    """The folder of the vendors' documents (it may not exist)."""
    configured = os.environ.get(ENV)
    return Path(configured) if configured else (ROOT.parent / "shared" / "specs").resolve()


def vendor_spec(name: str = "") -> Path:
    """The vendor document (or folder) ``name`` under :func:`vendor_specs`; skips the test when absent."""
    path = vendor_specs() / name
    if path.exists():
        return path
    message = (
        f"the vendor OpenAPI document {name or 'folder'!r} is not at {path} (the real public API documents "
        f"are not part of the repository): set {ENV} to a folder holding them, e.g. ../shared/specs"
    )
    if os.environ.get("TOOLBRIDGE_REQUIRE_SPECS") == "1":
        pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SPECS=1 requires them")
    pytest.skip(message)
