"""Migration 0013 moves a workspace's change feed (``ws_changes``) into the event log: every change keeps its
number, its time and what it said, a change the event log already held (events were configured) is not
recorded twice, and the feed goes on numbering after the last one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.workspace.conftest import ALICE, FakeClock
from toolbridge.storage import Database
from toolbridge.storage._database import _MIGRATIONS, _normalize
from toolbridge.workspace import LocalBlobStore, Role, Workspaces

pytestmark = pytest.mark.anyio


def _upgrade_to(sync_conn: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = sync_conn
    command.upgrade(config, revision)


async def _at_0012_with_changes(url: str) -> None:
    """A database as 0012 left it: workspace 'team' with three changes, the second also in the event log."""
    engine = create_async_engine(_normalize(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0012")
            await conn.execute(
                sa.text(
                    "INSERT INTO ws_workspaces (id, name, quota_bytes, used_bytes, change_seq, created_at) "
                    "VALUES ('team', 'team', NULL, 0, 3, 1000)"
                )
            )
            await conn.execute(
                sa.text("INSERT INTO ws_members (workspace_id, principal, role) VALUES ('team', :p, :r)"),
                {"p": ALICE.id, "r": int(Role.EDITOR)},
            )
            for seq, kind, path in (
                (1, "folder.created", "/a"),
                (2, "file.created", "/a/b.md"),
                (3, "x", "/c"),
            ):
                await conn.execute(
                    sa.text(
                        "INSERT INTO ws_changes (workspace_id, seq, kind, path, principal, at, detail) "
                        "VALUES ('team', :seq, :kind, :path, :who, :at, :detail)"
                    ).bindparams(sa.bindparam("detail", type_=sa.JSON)),
                    {
                        "seq": seq,
                        "kind": kind,
                        "path": path,
                        "who": ALICE.id,
                        "at": 1000.0 + seq,
                        "detail": {"n": seq},
                    },
                )
            payload = {
                "workspace": "team",
                "seq": 2,
                "kind": "file.created",
                "path": "/a/b.md",
                "principal": ALICE.id,
                "detail": {"n": 2},
            }
            await conn.execute(
                sa.text(
                    "INSERT INTO events (id, source, type, subject, time, payload) "
                    "VALUES ('evt_recorded', 'workspace', 'workspace.file.created', '/a/b.md', :t, :p)"
                ).bindparams(
                    sa.bindparam("t", type_=sa.DateTime(timezone=True)), sa.bindparam("p", type_=sa.JSON)
                ),
                {"t": dt.datetime(2026, 12, 1, tzinfo=dt.UTC), "p": payload},
            )
    finally:
        await engine.dispose()


async def test_the_change_feed_survives_its_move_into_the_event_log(
    database_url: str, tmp_path: Path
) -> None:
    await _at_0012_with_changes(database_url)
    async with Database(database_url) as db:  # migrates to head
        ws = Workspaces(db, LocalBlobStore(tmp_path / "blobs", fsync=False), clock=FakeClock())
        before = await ws.changes(ALICE, "team")
        await ws.mkdir(ALICE, "team", "/d")
        after = await ws.changes(ALICE, "team", cursor=before.cursor)
        async with db.transaction() as conn:
            workspace_events = (
                await conn.execute(sa.text("SELECT count(*) FROM events WHERE source = 'workspace'"))
            ).scalar_one()
            recorded = (
                await conn.execute(sa.text("SELECT stream, stream_seq FROM events WHERE id = 'evt_recorded'"))
            ).one()
    assert [(c.id, c.kind, c.path, c.at, dict(c.detail)) for c in before.changes] == [
        (1, "folder.created", "/a", 1001.0, {"n": 1}),
        (2, "file.created", "/a/b.md", dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp(), {"n": 2}),
        (3, "x", "/c", 1003.0, {"n": 3}),
    ]
    assert before.cursor == 3
    assert [(c.id, c.kind, c.path) for c in after.changes] == [(4, "folder.created", "/d")]
    assert tuple(recorded) == ("workspace:team", 2)  # the event already recorded took its number
    assert workspace_events == 4
