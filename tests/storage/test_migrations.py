"""Migrating an existing database on start, as an upgrade does: real SQLite files, a real PostgreSQL server,
real processes where the defect is about processes (killed mid-migration, two starting together)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import textwrap
from collections.abc import Callable

import anyio
import pytest
import sqlalchemy as sa
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from sqlalchemy.ext.asyncio import create_async_engine
from tests._patience import patience

from toolbridge import StorageError
from toolbridge.storage import Database
from toolbridge.storage._database import _MIGRATIONS, SCHEMA_HEAD

pytestmark = pytest.mark.anyio

_CHANGES = 50  # workspace change rows that migration 0013 moves into the event log


async def old_database(url: str, revision: str = "0012") -> None:
    """A database as an older toolbridge left it: migrated up to ``revision``, with workspace changes."""
    from alembic import command
    from alembic.config import Config

    def upgrade(conn: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)

    engine = create_async_engine(Database(url).url)
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(upgrade)
            for seq in range(1, _CHANGES + 1):
                await conn.execute(
                    sa.text(
                        "INSERT INTO ws_changes VALUES ('shared', :seq, 'file.updated', '/a.txt', "
                        "'agent:bot', 1796412363.1, '{}')"
                    ),
                    {"seq": seq},
                )
    finally:
        await engine.dispose()


async def schema(url: str) -> tuple[str, list[str], int]:
    """The recorded revision, the stream columns of ``events``, and its workspace events (read without
    migrating)."""
    engine = create_async_engine(Database(url).url)
    try:
        async with engine.connect() as conn:
            revision = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in sa.inspect(c).get_columns("events")]
            )
            streams = [c for c in columns if c.startswith("stream")]
            events = (
                await conn.execute(sa.text("SELECT count(*) FROM events WHERE source = 'workspace'"))
            ).scalar_one()
    finally:
        await engine.dispose()
    return revision, streams, int(events)


_START = textwrap.dedent(
    """
    import sys
    import anyio
    import sqlalchemy as sa
    from toolbridge.storage import Database

    url, pause_at, announce = sys.argv[1], sys.argv[2], sys.argv[3]
    paused = False

    def seen(conn, cursor, statement, *args):
        global paused
        words = statement.split()
        if announce and statement.lstrip().upper().startswith(tuple(announce.split(","))):
            print("at " + " ".join(words[:2]), flush=True)
        if pause_at and not paused and statement.lstrip().upper().startswith(pause_at):
            paused = True
            print("paused", flush=True)
            sys.stdin.readline()  # until the test says go on (or kills this process)

    sa.event.listen(sa.Engine, "before_cursor_execute", seen)

    async def main():
        async with Database(url):
            pass
        print("opened", flush=True)

    anyio.run(main)
    """
)


class Start:
    """A process opening the database (migrating it), which can pause at a statement and announce others."""

    def __init__(self, process: Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._out = BufferedByteReceiveStream(process.stdout)

    async def line(self) -> str:
        with anyio.fail_after(patience(60)):
            return (await self._out.receive_until(b"\n", 10_000)).decode()

    async def until(self, wanted: Callable[[str], bool]) -> str:
        while not wanted(line := await self.line()):
            pass
        return line

    async def go_on(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send(b"\n")

    async def exit_code(self) -> int:
        with anyio.fail_after(patience(120)):
            return await self.process.wait()


async def start(url: str, *, pause_at: str = "", announce: str = "") -> Start:
    process = await anyio.open_process(
        [sys.executable, "-c", _START, url, pause_at, announce], stderr=None, env={**os.environ}
    )
    return Start(process)


async def test_a_migration_killed_half_way_leaves_the_old_schema_and_the_next_start_migrates(
    sqlite_url: str,
) -> None:
    """Regression: the sqlite3 driver sends no BEGIN before DDL, so migration 0013's ALTERs committed one by
    one; a process killed while it copied the workspace changes (kill -9, a restart, a liveness probe) left
    the new columns under revision 0012, and every later start failed 'duplicate column name: stream' with
    a hint about file permissions (found by an outside probe of upgrades)."""
    await old_database(sqlite_url)
    first = await start(sqlite_url, pause_at="INSERT INTO EVENTS")  # in the middle of 0013
    try:
        assert await first.line() == "paused"
        first.process.send_signal(signal.SIGKILL)
        assert await first.exit_code() == -signal.SIGKILL
    finally:
        await first.process.aclose()
    assert await schema(sqlite_url) == ("0012", [], 0)  # all or nothing: nothing
    async with Database(sqlite_url):  # the next start migrates again, cleanly
        pass
    assert await schema(sqlite_url) == (SCHEMA_HEAD, ["stream", "stream_seq"], _CHANGES)


async def test_a_migration_failing_half_way_changes_nothing(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails with an error (here: while it copies the workspace changes) is rolled back
    whole on both backends, and the next start migrates."""
    await old_database(database_url)

    def failing(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            raise sa.exc.OperationalError(statement, {}, Exception("disk full"))

    sa.event.listen(sa.Engine, "before_cursor_execute", failing)
    try:
        with pytest.raises(StorageError, match="disk full"):
            async with Database(database_url):
                pass
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", failing)
    assert await schema(database_url) == ("0012", [], 0)
    async with Database(database_url):
        pass
    assert await schema(database_url) == (SCHEMA_HEAD, ["stream", "stream_seq"], _CHANGES)


async def test_two_processes_starting_together_on_an_old_sqlite_file_migrate_once(sqlite_url: str) -> None:
    """Regression: the second of two processes starting on an old SQLite file (serve and a worker, two
    `toolbridge mcp`) read revision 0012 while the first migrated, then ran the same ALTERs again and died
    with 'duplicate column name'. Now it waits for the first's write lock and finds the schema current."""
    await old_database(sqlite_url)
    first = await start(sqlite_url, pause_at="INSERT INTO EVENTS")
    second: Start | None = None
    try:
        assert await first.line() == "paused"  # the first is migrating, its write lock held
        second = await start(sqlite_url, announce="BEGIN,ALTER")
        await second.until(lambda line: line.startswith("at "))  # the second has read 0012, goes to write
        await first.go_on()
        assert await first.until(lambda line: line == "opened")
        assert await second.until(lambda line: line == "opened")
        assert (await first.exit_code(), await second.exit_code()) == (0, 0)
    finally:
        for process in (first, second):
            if process is not None:
                if process.process.returncode is None:
                    process.process.kill()
                await process.process.aclose()
    assert await schema(sqlite_url) == (SCHEMA_HEAD, ["stream", "stream_seq"], _CHANGES)


async def test_a_database_from_a_newer_toolbridge_is_refused_unchanged_with_a_hint(database_url: str) -> None:
    """Regression: a database stamped with a revision this code does not know (a newer version migrated
    it; a rollback after an upgrade) failed with alembic's CommandError: a 130-line traceback from serve,
    mcp and every CLI command."""
    async with Database(database_url) as db, db.transaction() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(StorageError) as info:
        async with Database(database_url):
            pass
    assert "its schema 0099 is newer than this toolbridge, which knows up to " + SCHEMA_HEAD in str(
        info.value
    )
    assert info.value.hint is not None and "restore the backup taken before upgrading" in info.value.hint
    engine = create_async_engine(Database(database_url).url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar() == "0099"
    finally:
        await engine.dispose()


async def test_the_cli_on_a_database_from_a_newer_toolbridge_prints_one_error_and_a_hint(
    sqlite_url: str,
) -> None:
    async with Database(sqlite_url) as db, db.transaction() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    with anyio.fail_after(patience(60)):
        result = await anyio.run_process(
            [sys.executable, "-m", "toolbridge", "agents", "list", "--database", sqlite_url],
            check=False,
            env={**os.environ, "COLUMNS": "300"},
        )
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], lines
    assert "schema 0099 is newer" in lines[0] and "restore the backup" in lines[1]


async def test_a_migration_logs_what_it_does_and_an_open_of_a_current_schema_logs_nothing(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a migration ran silent (27-147 s on big databases) with no line saying why a start took
    that long."""
    await old_database(sqlite_url)
    with caplog.at_level(logging.INFO, logger="toolbridge.storage"):
        async with Database(sqlite_url):
            pass
        migrated = [r.getMessage() for r in caplog.records if r.name == "toolbridge.storage"]
        caplog.clear()
        async with Database(sqlite_url):
            pass
        again = [r.getMessage() for r in caplog.records if r.name == "toolbridge.storage"]
    assert len(migrated) == 2, migrated
    assert migrated[0] == f"migrating the database from 0012 to {SCHEMA_HEAD}"
    assert migrated[1].startswith(f"migrated the database to {SCHEMA_HEAD}: done in ")
    assert migrated[1].endswith(" s")
    assert again == []
