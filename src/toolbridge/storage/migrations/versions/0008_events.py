"""Events: the durable event log, inbound delivery ids for deduplication, outbound deliveries, endpoints.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", _BIG, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False, unique=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("time", _TS, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=True),
    )
    op.create_index("ix_events_time", "events", ["time"])
    op.create_table(
        "event_dedupe",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_index("ix_event_dedupe_expires_at", "event_dedupe", ["expires_at"])
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("event_seq", _BIG, nullable=False),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("last_error", sa.JSON, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["state", "next_attempt_at"])
    op.create_table(
        "event_endpoints",
        sa.Column("subscription", sa.String(64), primary_key=True),
        sa.Column("disabled_at", _TS, nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_endpoints")
    op.drop_index("ix_event_deliveries_due", "event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_index("ix_event_dedupe_expires_at", "event_dedupe")
    op.drop_table("event_dedupe")
    op.drop_index("ix_events_time", "events")
    op.drop_table("events")
