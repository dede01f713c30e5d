"""The vault's key fence: one row naming the master key that secrets are sealed with since the last
rotation. Every vault write share-locks it; a rotation moves it before re-wrapping, so no write sealed with
the old key can commit after the pass meant to catch it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    fence = op.create_table(
        "vault_fence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(fence, [{"id": 1, "key_id": "", "updated_at": None}])  # '': no rotation yet


def downgrade() -> None:
    op.drop_table("vault_fence")
