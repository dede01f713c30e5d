"""The hash chain: each audit row's hash covers its fields and the previous row's hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

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
    """The arguments as compact, key-sorted UTF-8 JSON: what is hashed, and what is measured against caps."""
    return _CANONICAL.encode(arguments).encode()


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
