"""Step 5 of the call path: turn a connector's value into a result an agent can take in."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolbridge.catalog import Tool

__all__ = ["CallResult", "Shaped", "paging_arguments", "shape"]

_PAGING = re.compile(
    r"^(limit|max_?results|page_?size|per_?page|count|page|page_?token|cursor|offset|starting_?after|"
    r"after|next_?token|next_?page_?token|start|length|range)$",
    re.I,
)
_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""A result as text (built once: ``json.dumps`` with options builds an encoder per call)."""


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


@dataclass(frozen=True, slots=True)
class Shaped:
    """A result another call already cut (a capability's provider): passed on as it is. Cut again, its
    markers were nested in a second pair and its ``size`` was the cut text's, not the result's."""

    text: str
    size: int


def shape(value: Any, *, max_bytes: int, tool: Tool | None = None) -> tuple[Any, str, bool, int]:
    """Return ``(value, text, truncated, size)`` for ``value`` under a cap of ``max_bytes``.

    A cut text says so first (before the agent reads the part kept) and again at the end, naming the
    tool's paging arguments when it has any.
    """
    if isinstance(value, Shaped):
        return None, value.text, True, value.size
    if isinstance(value, str):
        text = value
    else:
        try:
            text = _TEXT.encode(value)
        except ValueError:  # NaN or an infinity (Python's JSON reads them): no JSON has them, null does
            value = _finite(value)
            text = _TEXT.encode(value)
    data = text.encode()
    size = len(data)
    if size <= max_bytes:
        return value, text, False, size
    kept = data[:max_bytes].decode(errors="ignore")
    names = paging_arguments(tool) if tool is not None else []
    how = (
        f"call again with the tool's paging arguments ({', '.join(names)}) or narrower filters"
        if names
        else "ask for less (filters, a smaller page or a narrower range)"
    )
    shown = f"showing {len(kept.encode()):,} of {size:,} bytes"
    marker = f"[toolbridge: result truncated: {shown}; {how} to see the rest]"
    return None, f"{marker}\n{kept}\n{marker}", True, size


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def paging_arguments(tool: Tool) -> list[str]:
    """The names of ``tool``'s arguments that page or cap its results (``limit``, ``cursor`` …)."""
    props = tool.input_schema.get("properties")
    return [name for name in props if _PAGING.match(name)] if isinstance(props, Mapping) else []
