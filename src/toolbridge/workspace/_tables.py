"""Workspace tables (SQLAlchemy Core), created by migration ``0002_workspace``."""

from __future__ import annotations

import sqlalchemy as sa

from toolbridge.storage import metadata

__all__ = ["ws_credits", "ws_files", "ws_leases", "ws_members", "ws_versions", "ws_workspaces"]

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")

ws_workspaces = sa.Table(
    "ws_workspaces",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("quota_bytes", sa.BigInteger, nullable=True),
    sa.Column("used_bytes", sa.BigInteger, nullable=False),
    sa.Column("change_seq", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

ws_members = sa.Table(
    "ws_members",
    metadata,
    sa.Column("workspace_id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(80), primary_key=True),
    sa.Column("role", sa.SmallInteger, nullable=False),
)

ws_files = sa.Table(
    "ws_files",
    metadata,
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

ws_versions = sa.Table(
    "ws_versions",
    metadata,
    sa.Column("file_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
)

ws_leases = sa.Table(
    "ws_leases",
    metadata,
    sa.Column("workspace_id", sa.String(64), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("fence", sa.BigInteger, nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=True),
    sa.Column("holder", sa.String(80), nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
)

ws_credits = sa.Table(
    "ws_credits",
    metadata,
    sa.Column("principal", sa.String(80), primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False),
)
