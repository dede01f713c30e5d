"""Connections owned by principals: ``owner`` on connections and pending OAuth states.

``owner`` is the principal id (``agent:alice``) a connection belongs to, or ``''`` for a connection an
operator shares. An account name is unique per connector *and owner*, so two people may both connect
"default".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default=""))
        batch.drop_constraint("uq_connections_connector_account", type_="unique")
        batch.create_unique_constraint(
            "uq_connections_connector_owner_account", ["connector", "owner", "account"]
        )
    with op.batch_alter_table("oauth_states") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("owner")
    op.execute("DELETE FROM connections WHERE owner <> ''")  # per-person connections cannot survive
    with op.batch_alter_table("connections") as batch:
        batch.drop_constraint("uq_connections_connector_owner_account", type_="unique")
        batch.create_unique_constraint("uq_connections_connector_account", ["connector", "account"])
        batch.drop_column("owner")
