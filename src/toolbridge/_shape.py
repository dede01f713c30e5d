"""Step 5 of the call path: turn a connector's value into a result an agent can take in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CallResult", "shape"]


@dataclass(frozen=True, slots=True)
class CallResult:
    """The outcome of a successful call.

    ``value`` is the JSON-compatible result, or None when it was truncated; ``text`` is the result as
    text (JSON for non-strings), cut at the hub's size cap with an explicit marker when ``truncated``.
    """

    tool: str
    value: Any
    text: str
    truncated: bool
    size: int
    request_id: str
    duration_ms: float
    replayed: bool = False
    """True when an idempotency key matched an earlier call and its stored outcome was returned."""
    queued: bool = False
    """True when the call failed transiently and was put in the outbox; ``value`` names the item."""


def shape(value: Any, *, max_bytes: int) -> tuple[Any, str, bool, int]:
    """Return ``(value, text, truncated, size)`` for ``value`` under a cap of ``max_bytes``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    data = text.encode()
    size = len(data)
    if size <= max_bytes:
        return value, text, False, size
    kept = data[:max_bytes].decode(errors="ignore")
    marker = (
        f"\n[toolbridge: result truncated: showing {len(kept.encode()):,} of {size:,} bytes. "
        "Ask for less (filters, a smaller page or a narrower range) to see the rest.]"
    )
    return None, kept + marker, True, size
