"""Event triggers: the last result (item digests by key) and the schedule of each poll trigger.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_triggers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=True),
        sa.Column("next_run", _TS, nullable=False),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_triggers")
