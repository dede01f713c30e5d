"""The audit log: one hash-chained row per call, so that tampering is detectable."""

from toolbridge.audit._chain import GENESIS, AuditEntry, AuditRecord, args_digest, canonical_json, chain_hash
from toolbridge.audit._entry import audit_entry
from toolbridge.audit._log import AuditLog, Verification
from toolbridge.audit._metrics import CallMetrics

__all__ = [
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "CallMetrics",
    "GENESIS",
    "Verification",
    "args_digest",
    "audit_entry",
    "canonical_json",
    "chain_hash",
]
