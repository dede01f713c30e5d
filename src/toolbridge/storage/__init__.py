"""Persistence: SQLAlchemy 2 async over SQLite (default) or PostgreSQL, migrated with alembic."""

from toolbridge.storage._database import MEMORY_URL, Database, sqlite_file
from toolbridge.storage._tables import (
    agents,
    api_keys,
    audit_events,
    audit_head,
    idempotency_records,
    metadata,
    outbox,
)

__all__ = [
    "Database",
    "MEMORY_URL",
    "agents",
    "api_keys",
    "audit_events",
    "audit_head",
    "idempotency_records",
    "metadata",
    "outbox",
    "sqlite_file",
]
