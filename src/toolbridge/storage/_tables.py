"""The database schema, as SQLAlchemy Core tables. Migrations in ``migrations/`` create them."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["agents", "api_keys", "audit_events", "audit_head", "idempotency_records", "metadata", "outbox"]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("agent_name", sa.String(64), sa.ForeignKey("agents.name", ondelete="CASCADE"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(80), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("args_digest", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_events_tool", audit_events.c.tool)
sa.Index("ix_audit_events_principal", audit_events.c.principal)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

idempotency_records = sa.Table(
    "idempotency_records",
    metadata,
    sa.Column("principal", sa.String(80), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("request_digest", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("outcome", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
)
sa.Index("ix_idempotency_records_expires_at", idempotency_records.c.expires_at)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("principal", sa.String(80), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("arguments", sa.JSON, nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.JSON, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_token", sa.String(64), nullable=True),
)
sa.Index("ix_outbox_due", outbox.c.state, outbox.c.next_attempt_at)
