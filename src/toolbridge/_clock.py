"""The event loop's clock, read at the cost of one C call on asyncio.

``anyio.current_time()`` finds the running backend on every read (sniffio, then the backend class:
~0.5 µs, about ten times the loop's own ``time()``), and a tool call read it seven times. On asyncio,
anyio's clock *is* the running loop's ``time()``, so :func:`now` reads that directly; on another anyio
backend (trio) it asks anyio.
"""

from __future__ import annotations

import asyncio

import anyio

__all__ = ["ms_since", "now"]


def now() -> float:
    """``anyio.current_time()``: the running event loop's clock, in seconds."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # no asyncio loop: another anyio backend (or none, which anyio refuses too)
        return anyio.current_time()


def ms_since(started: float) -> float:
    """Milliseconds from ``started`` (a :func:`now` reading) to now."""
    return (now() - started) * 1000.0
