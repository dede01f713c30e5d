"""Pipeline tables (SQLAlchemy Core), created by migration 0012_pipelines."""

from __future__ import annotations

import sqlalchemy as sa

from toolbridge.storage import metadata

__all__ = ["pipeline_runs", "pipeline_steps"]

_TS = sa.DateTime(timezone=True)

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(64), nullable=False),
    sa.Column("principal", sa.String(80), nullable=False),
    sa.Column("input", sa.JSON, nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("lease_until", _TS, nullable=True),
    sa.Column("lease_token", sa.String(64), nullable=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)
sa.Index("ix_pipeline_runs_due", pipeline_runs.c.state, pipeline_runs.c.next_attempt_at)
sa.Index("ix_pipeline_runs_principal", pipeline_runs.c.principal, pipeline_runs.c.created_at)

pipeline_steps = sa.Table(
    "pipeline_steps",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Column("output", sa.JSON, nullable=True),
    sa.Column("compensation", sa.JSON, nullable=True),
    sa.Column("error", sa.JSON, nullable=True),
    sa.Column("started_at", _TS, nullable=False),
    sa.Column("finished_at", _TS, nullable=True),
)
