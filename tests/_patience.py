"""One knob for every bounded wait in the tests: ``TOOLBRIDGE_TEST_PATIENCE`` (a factor, default 1).

A bound in a test is there to end a hung test, never to claim that something is fast. On a machine that
is busy with other work (CI on two shared cores, a laptop compiling), the same bounds can be too short;
``TOOLBRIDGE_TEST_PATIENCE=3`` triples every one of them at once. A test that passes only because a bound
is long is still correct; a test that fails only because a bound is short is the flakiness this removes.
"""

from __future__ import annotations

import os


def _factor() -> float:
    raw = os.environ.get("TOOLBRIDGE_TEST_PATIENCE", "1")
    try:
        factor = float(raw)
    except ValueError:
        factor = 0.0
    if not factor > 0:
        raise RuntimeError(f"TOOLBRIDGE_TEST_PATIENCE={raw!r}: expected a positive number such as 1 or 3")
    return factor


FACTOR = _factor()


def patience(seconds: float) -> float:
    """``seconds`` scaled by ``TOOLBRIDGE_TEST_PATIENCE``: use it for every wait that bounds a test."""
    return seconds * FACTOR
