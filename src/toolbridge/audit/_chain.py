"""The hash chain: each audit row's hash covers its fields and the previous row's hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from toolbridge.errors import InvalidArguments

__all__ = ["GENESIS", "AuditEntry", "AuditRecord", "args_digest", "chain_hash"]

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One call, as the hub reports it (before it has a place in the chain)."""

    ts: dt.datetime
    request_id: str
    principal: str
    tool: str
    args_digest: str
    outcome: str
    """``ok``, ``error`` or ``denied``."""
    error_code: str | None
    duration_ms: float


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry with its place in the chain."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self.entry)
        row["ts"] = self.entry.ts.isoformat()
        return {"seq": self.seq, **row, "prev_hash": self.prev_hash, "hash": self.hash}


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# (one encoder each, built once: ``json.dumps`` with options builds a new one per call, ~0.7 µs)


def canonical_json(arguments: Mapping[str, Any]) -> bytes:
    """The arguments as compact, key-sorted UTF-8 JSON: what is hashed, and what is measured against caps.

    Text that is not Unicode (a lone surrogate: JSON's ``"\\ud800"`` escape without its other half) is the
    caller's mistake, :class:`InvalidArguments` naming where it is; it was a "toolbridge bug" (502)."""
    text = _CANONICAL.encode(arguments)
    try:
        return text.encode()
    except UnicodeEncodeError:
        where = (_surrogate_at(arguments, "") or "(arguments)").encode(errors="backslashreplace").decode()
        raise InvalidArguments(
            f"the arguments hold text that is not valid Unicode at {where}: a lone surrogate",
            errors=[{"field": where, "error": "a lone surrogate (\\ud800-\\udfff without its pair)"}],
            hint="send text as UTF-8; a \\uXXXX escape of a surrogate must be followed by its other half",
        ) from None


def _surrogate_at(value: object, path: str) -> str | None:
    """The dotted path of the first string (or key) in ``value`` that holds a lone surrogate."""
    if isinstance(value, str):
        return (path or "(arguments)") if not value.isascii() and _lone(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _lone(key):
                return inner
            found = _surrogate_at(item, inner)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _surrogate_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _lone(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def args_digest(arguments: Mapping[str, Any], *, canonical: bytes | None = None) -> str:
    """SHA-256 of the canonical JSON of the arguments: shows what was sent without storing it."""
    return hashlib.sha256(canonical if canonical is not None else canonical_json(arguments)).hexdigest()


def chain_hash(seq: int, entry: AuditEntry, prev_hash: str) -> str:
    ts = entry.ts.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    fields = [
        seq,
        ts,
        entry.request_id,
        entry.principal,
        entry.tool,
        entry.args_digest,
        entry.outcome,
        entry.error_code,
        round(entry.duration_ms, 3),
        prev_hash,
    ]
    return hashlib.sha256(_COMPACT.encode(fields).encode()).hexdigest()
