"""Leases: outbox items carry the token of the worker that holds them; idempotency claims carry their
owner (process), a renewable lease and the request id of the call that claimed them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("outbox", sa.Column("lease_token", sa.String(64), nullable=True))
    op.add_column("idempotency_records", sa.Column("owner", sa.String(64), nullable=True))
    op.add_column("idempotency_records", sa.Column("lease_until", _TS, nullable=True))
    op.add_column("idempotency_records", sa.Column("request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_records") as batch:
        batch.drop_column("request_id")
        batch.drop_column("lease_until")
        batch.drop_column("owner")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lease_token")
