"""Event tables (SQLAlchemy Core), created by migrations 0008_events, 0010, 0011 (lease tokens) and 0013
(streams: the workspace change feeds)."""

from __future__ import annotations

import sqlalchemy as sa

from toolbridge.storage import metadata

__all__ = ["event_dedupe", "event_deliveries", "event_endpoints", "event_triggers", "events"]

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", _BIG, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(40), nullable=False, unique=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(255), nullable=True),
    sa.Column("time", _TS, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("delivery_id", sa.String(255), nullable=True),
    sa.Column("stream", sa.String(80), nullable=True),
    sa.Column("stream_seq", _BIG, nullable=True),
)
sa.Index("ix_events_time", events.c.time)
sa.Index("ux_events_stream", events.c.stream, events.c.stream_seq, unique=True)

event_dedupe = sa.Table(
    "event_dedupe",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("delivery_id", sa.String(255), primary_key=True),
    sa.Column("event_id", sa.String(40), nullable=False),
    sa.Column("expires_at", _TS, nullable=False),
)
sa.Index("ix_event_dedupe_expires_at", event_dedupe.c.expires_at)

event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("event_seq", _BIG, nullable=False),
    sa.Column("subscription", sa.String(64), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("lease_until", _TS, nullable=True),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("last_error", sa.JSON, nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)
sa.Index("ix_event_deliveries_due", event_deliveries.c.state, event_deliveries.c.next_attempt_at)

event_endpoints = sa.Table(
    "event_endpoints",
    metadata,
    sa.Column("subscription", sa.String(64), primary_key=True),
    sa.Column("disabled_at", _TS, nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
)

event_triggers = sa.Table(
    "event_triggers",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("state", sa.JSON, nullable=True),
    sa.Column("next_run", _TS, nullable=False),
    sa.Column("lease_until", _TS, nullable=True),
    sa.Column("lease_token", sa.String(32), nullable=True),
    sa.Column("updated_at", _TS, nullable=False),
)
