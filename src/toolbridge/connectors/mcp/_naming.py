"""Upstream tool names → catalog names: ``connector.tool``, ``[a-z0-9_.-]``, ≤ 64 characters, unique, stable.

The same upstream names always give the same catalog names, whatever order the upstream lists them in:
a name that must be shortened or that collides after sanitizing gets a short hash of the *upstream* name,
never a counter.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = ["catalog_names"]

_UNSAFE = re.compile(r"[^a-z0-9_.-]+")
_MAX = 64


def _digest(upstream: str) -> str:
    return hashlib.sha256(upstream.encode()).hexdigest()[:8]


def _clean(upstream: str) -> str:
    camel = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", upstream)
    return _UNSAFE.sub("_", camel.lower()).strip("._-") or "tool"


def _fit(connector: str, operation: str, upstream: str, *, force_hash: bool) -> str:
    prefix = f"{connector}." if connector else ""
    name = prefix + operation
    if len(name) <= _MAX and not force_hash:
        return name
    suffix = "-" + _digest(upstream)
    room = _MAX - len(prefix) - len(suffix)
    return f"{prefix}{operation[: max(room, 1)].rstrip('._-')}{suffix}"


def catalog_names(connector: str, upstream_names: Iterable[str]) -> dict[str, str]:
    """Map each upstream tool name to its catalog name (``connector.operation``; ``operation`` alone when
    ``connector`` is empty: the names of a connector mounted without its prefix)."""
    names = sorted(set(upstream_names))
    cleaned = {u: _clean(u) for u in names}
    counts: dict[str, int] = {}
    for operation in cleaned.values():
        counts[operation] = counts.get(operation, 0) + 1
    result: dict[str, str] = {}
    for upstream, operation in cleaned.items():
        # A sanitized name shared by two upstream names is hashed for both: neither depends on the other.
        clash = counts[operation] > 1 or operation != upstream
        result[upstream] = _fit(connector, operation, upstream, force_hash=clash and counts[operation] > 1)
    return result
