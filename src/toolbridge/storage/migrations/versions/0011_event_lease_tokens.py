"""Event deliveries and triggers carry the token of the lease that holds them (a late worker is fenced off).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("event_deliveries", "event_triggers"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_token", sa.String(32), nullable=True))


def downgrade() -> None:
    for table in ("event_deliveries", "event_triggers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_token")
