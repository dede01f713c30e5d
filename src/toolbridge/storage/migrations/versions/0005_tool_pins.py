"""Tool pins: the approved definition (and its hash) of each upstream MCP tool.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_pins",
        sa.Column("tool", sa.String(64), primary_key=True),
        sa.Column("connector", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("approved_by", sa.String(80), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tool_pins_connector", "tool_pins", ["connector"])


def downgrade() -> None:
    op.drop_index("ix_tool_pins_connector", "tool_pins")
    op.drop_table("tool_pins")
