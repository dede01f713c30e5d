"""Workspace: workspaces, members, files with versions, leases with fencing, the change log, credits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    _create_workspaces()
    _create_files_and_versions()
    _create_leases()
    _create_changes_and_credits()


def _create_workspaces() -> None:
    op.create_table(
        "ws_workspaces",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger, nullable=True),
        sa.Column("used_bytes", sa.BigInteger, nullable=False),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ws_members",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(80), primary_key=True),
        sa.Column("role", sa.SmallInteger, nullable=False),
    )
    op.create_index("ix_ws_members_principal", "ws_members", ["principal"])


def _create_files_and_versions() -> None:
    op.create_table(
        "ws_files",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("trash_key", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=False),
        sa.UniqueConstraint("workspace_id", "path", "trash_key", name="uq_ws_files_path"),
    )
    op.create_table(
        "ws_versions",
        sa.Column("file_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
    )


def _create_leases() -> None:
    op.create_table(
        "ws_leases",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("fence", sa.BigInteger, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("holder", sa.String(80), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )


def _create_changes_and_credits() -> None:
    op.create_table(
        "ws_changes",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("seq", _BIG, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("principal", sa.String(80), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "ws_credits",
        sa.Column("principal", sa.String(80), primary_key=True),
        sa.Column("used", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("ws_credits", "ws_changes", "ws_leases", "ws_versions", "ws_files"):
        op.drop_table(table)
    op.drop_index("ix_ws_members_principal", "ws_members")
    op.drop_table("ws_members")
    op.drop_table("ws_workspaces")
