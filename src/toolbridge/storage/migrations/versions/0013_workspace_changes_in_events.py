"""The workspace change feed moves into the event log: events get a stream (``workspace:<id>``) and a number
in it; every ``ws_changes`` row becomes (or, if events were configured, already was) such an event, and
``ws_changes`` is dropped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)

_events = sa.table(
    "events",
    sa.column("seq", _BIG),
    sa.column("id", sa.String),
    sa.column("source", sa.String),
    sa.column("type", sa.String),
    sa.column("subject", sa.String),
    sa.column("time", _TS),
    sa.column("payload", sa.JSON),
    sa.column("delivery_id", sa.String),
    sa.column("stream", sa.String),
    sa.column("stream_seq", _BIG),
)
_changes = sa.table(
    "ws_changes",
    sa.column("workspace_id", sa.String),
    sa.column("seq", _BIG),
    sa.column("kind", sa.String),
    sa.column("path", sa.String),
    sa.column("principal", sa.String),
    sa.column("at", sa.Float),
    sa.column("detail", sa.JSON),
)
_PAGE = 1000


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("stream", sa.String(80), nullable=True))
        batch.add_column(sa.Column("stream_seq", _BIG, nullable=True))
    conn = op.get_bind()
    recorded = _recorded_changes(conn)  # (workspace, seq) → event seq, when events were configured
    for rows in _pages(conn, sa.select(_changes).order_by(_changes.c.workspace_id, _changes.c.seq)):
        fresh = []
        for row in rows:
            stream, number = f"workspace:{row.workspace_id}", int(row.seq)
            found = recorded.get((row.workspace_id, number))
            if found is not None:
                conn.execute(
                    _events.update().where(_events.c.seq == found).values(stream=stream, stream_seq=number)
                )
                continue
            fresh.append(_event_row(row, stream, number))
        if fresh:
            conn.execute(_events.insert(), fresh)
    op.create_index("ux_events_stream", "events", ["stream", "stream_seq"], unique=True)
    op.drop_table("ws_changes")


def _recorded_changes(conn: sa.Connection) -> dict[tuple[str, int], int]:
    query = sa.select(_events.c.seq, _events.c.payload).where(_events.c.source == "workspace")
    found: dict[tuple[str, int], int] = {}
    for rows in _pages(conn, query.order_by(_events.c.seq)):
        for row in rows:
            payload = _json(row.payload)
            if isinstance(payload.get("workspace"), str) and isinstance(payload.get("seq"), int):
                found.setdefault((payload["workspace"], payload["seq"]), int(row.seq))
    return found


def _pages(conn: sa.Connection, query: sa.Select[Any]) -> Any:
    offset = 0
    while rows := conn.execute(query.limit(_PAGE).offset(offset)).all():
        yield rows
        offset += len(rows)


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _event_row(row: Any, stream: str, number: int) -> dict[str, Any]:
    detail = _json(row.detail)
    payload = {"workspace": row.workspace_id, "seq": number, "kind": row.kind, "path": row.path}
    payload.update(principal=row.principal, detail=detail)
    return {
        "id": "evt_" + secrets.token_hex(12),
        "source": "workspace",
        "type": f"workspace.{row.kind}",
        "subject": row.path[:255],
        "time": dt.datetime.fromtimestamp(float(row.at), dt.UTC),
        "payload": payload,
        "delivery_id": None,
        "stream": stream,
        "stream_seq": number,
    }


def downgrade() -> None:
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
    conn = op.get_bind()
    query = sa.select(_events).where(_events.c.stream.like("workspace:%")).order_by(_events.c.seq)
    for rows in _pages(conn, query):
        back = []
        for row in rows:
            payload = _json(row.payload)
            back.append(
                {
                    "workspace_id": row.stream.removeprefix("workspace:"),
                    "seq": int(row.stream_seq),
                    "kind": payload.get("kind") or row.type.removeprefix("workspace."),
                    "path": payload.get("path") or row.subject or "",
                    "principal": payload.get("principal") or "",
                    "at": _aware(row.time).timestamp(),
                    "detail": payload.get("detail") or {},
                }
            )
        conn.execute(_changes.insert(), back)
    op.drop_index("ux_events_stream", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("stream_seq")
        batch.drop_column("stream")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
