"""Storage against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import textwrap

import anyio
import pytest
import sqlalchemy as sa
from tests._patience import patience

from toolbridge import AuthenticationError, ConfigurationError, Hub, Principal, StorageError
from toolbridge.audit import AuditEntry, AuditLog
from toolbridge.storage import Database, audit_events, audit_head

pytestmark = pytest.mark.anyio


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from toolbridge.storage import _database

    config = Config()
    config.set_main_option("script_location", str(_database._MIGRATIONS))
    return str(ScriptDirectory.from_config(config).get_current_head())


def entry(tool: str = "t.x", outcome: str = "ok") -> AuditEntry:
    return AuditEntry(
        ts=dt.datetime.now(dt.UTC),
        request_id="r1",
        principal="agent:a",
        tool=tool,
        args_digest="0" * 64,
        outcome=outcome,
        error_code=None,
        duration_ms=1.25,
    )


def test_schema_head_names_the_newest_migration() -> None:
    from toolbridge.storage._database import SCHEMA_HEAD

    assert _head_revision() == SCHEMA_HEAD, "bump SCHEMA_HEAD in storage/_database.py with a new migration"


async def test_a_migrated_database_opens_with_one_query_and_no_migration(database_url: str) -> None:
    """Regression: every start ran alembic (seconds on a busy machine) though nothing had changed."""
    async with Database(database_url):
        pass
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", seen)
    try:
        async with Database(database_url):
            pass
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", seen)
    schema_work = [s for s in statements if "alembic" in s.lower() or s.lstrip().upper().startswith(_DDL)]
    assert schema_work == ["SELECT version_num FROM alembic_version"]


_DDL = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "SELECT PG_ADVISORY")


async def test_migrations_are_idempotent(database_url: str) -> None:
    async with Database(database_url) as db:
        await db.migrate()  # a second run (another replica starting) changes nothing
        async with db.transaction() as conn:
            version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert version == _head_revision()


async def test_agent_keys_are_stored_hashed_and_revocable(database_url: str) -> None:
    async with Hub(database=database_url, key_cache_ttl=0) as hub:
        key = await hub.agents.create("alice", ["notes.*", "*:read"])
        principal = await hub.authenticate(key)
        assert principal == Principal.agent("alice", ["notes.*:write", "*:read"], key_id=principal.key_id)
        async with hub.database.transaction() as conn:
            dump = str((await conn.execute(sa.text("SELECT * FROM api_keys"))).all())
        secret = key.split("_", 2)[2]  # tb_<hex id>_<secret>; the secret itself may hold "_"
        assert key not in dump and secret not in dump
        [info] = await hub.agents.list()
        assert (info.name, info.active_keys, info.source) == ("alice", 1, "cli")
        assert await hub.agents.revoke("alice") == 1
        with pytest.raises(AuthenticationError, match="unknown or revoked"):
            await hub.authenticate(key)


async def test_bad_keys_are_refused_and_audited(database_url: str) -> None:
    async with Hub(database=database_url) as hub:
        for bad in [None, "", "nope", "tb_000000000000_wrong"]:
            with pytest.raises(AuthenticationError):
                await hub.authenticate(bad)
        await hub.audit.flush()
        rows = await hub.audit.tail(10)
    assert [r.entry.outcome for r in rows] == ["denied"] * 4
    assert {r.entry.error_code for r in rows} == {"unauthenticated"}


async def test_config_agents_keep_their_scopes(database_url: str) -> None:
    async with Hub(database=database_url, agents={"bot": ["util.*"]}) as hub:
        key = await hub.agents.create("bot")
        assert [str(s) for s in (await hub.authenticate(key)).scopes] == ["util.*:write"]
        with pytest.raises(ConfigurationError, match="does not exist and no scope"):
            await hub.agents.create("ghost")
        with pytest.raises(ConfigurationError, match="did you mean 'bot'"):
            await hub.agents.revoke("bott")


async def test_audit_verify_detects_edits_and_deletions(database_url: str) -> None:
    async with Database(database_url) as db, AuditLog(db) as log:
        for i in range(5):
            await log.record(entry(tool=f"t.{i}"))
        await log.flush()
        assert (await log.verify()).ok
        async with db.transaction() as conn:
            await conn.execute(audit_events.update().where(audit_events.c.seq == 3).values(outcome="denied"))
        result = await log.verify()
        assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
        assert "modified" in str(result.reason)
        async with db.transaction() as conn:
            await conn.execute(audit_events.update().where(audit_events.c.seq == 3).values(outcome="ok"))
            await conn.execute(audit_events.delete().where(audit_events.c.seq == 5))
        result = await log.verify()
        assert not result.ok and "deleted from the end" in str(result.reason)
        async with db.transaction() as conn:
            await conn.execute(audit_events.delete().where(audit_events.c.seq == 2))
            await conn.execute(audit_head.update().values(seq=4))
        result = await log.verify()
        assert (result.ok, result.first_bad_seq) == (False, 3)


async def test_audit_log_under_back_pressure_keeps_every_entry_and_its_time(database_url: str) -> None:
    """A queue of two, forty concurrent writers, a call cancelled right after recording: all rows land."""
    paris = dt.timezone(dt.timedelta(hours=1))
    async with Database(database_url) as db:
        async with AuditLog(db, queue_size=2, linger=0.001) as log:
            async with anyio.create_task_group() as tg:
                for i in range(40):
                    tg.start_soon(log.record, entry(tool=f"t.{i}"))
            with anyio.CancelScope() as scope:
                scope.cancel()
                await log.record(
                    AuditEntry(
                        dt.datetime(2026, 1, 2, 3, 4, 5, 6, paris),
                        "r",
                        "p",
                        "t.late",
                        "0" * 64,
                        "ok",
                        None,
                        1.0,
                    )
                )
        log = AuditLog(db)  # closed: what was queued was written on the way out
        result = await log.verify()
        assert result.ok and result.checked == 41
        (last,) = await log.tail(1)
        assert last.entry.tool == "t.late"
        assert last.entry.ts == dt.datetime(2026, 1, 2, 2, 4, 5, 6, dt.UTC)


_WRITER = textwrap.dedent(
    """
    import anyio, datetime as dt, sys
    from toolbridge.audit import AuditEntry, AuditLog
    from toolbridge.storage import Database

    async def main():
        async with Database(sys.argv[1]) as db, AuditLog(db) as log:
            for i in range(200):
                await log.record(AuditEntry(dt.datetime.now(dt.UTC), "r", "p", f"w.{sys.argv[2]}", "0" * 64,
                                            "ok", None, 0.5))
                if i % 20 == 0:
                    await log.flush()
    anyio.run(main)
    """
)


async def test_two_processes_share_one_linear_chain(database_url: str) -> None:
    async with Database(database_url):
        pass  # migrate once before the writers race
    codes: list[int] = []

    async def writer(n: int) -> None:
        result = await anyio.run_process([sys.executable, "-c", _WRITER, database_url, str(n)], check=False)
        codes.append(result.returncode)

    with anyio.fail_after(patience(120)):
        async with anyio.create_task_group() as tg:
            for n in range(2):
                tg.start_soon(writer, n)
    assert codes == [0, 0]
    async with Database(database_url) as db:
        result = await AuditLog(db).verify()
    assert result.ok and result.checked == 400


async def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="cannot open or migrate the database at postgresql") as info:
        async with Database("postgresql://nobody:secret@127.0.0.1:1/none"):
            pass
    assert "secret" not in str(info.value)


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not supported"):
        Database("mysql://localhost/x")


async def test_the_audit_tail_reads_its_own_writes(database_url: str) -> None:
    """Regression: ``/v1/calls`` and ``audit tail`` right after a call missed it while the batch writer
    lingered for more entries."""
    async with Database(database_url) as db, AuditLog(db, linger=600) as log:
        await log.record(entry(tool="t.just_now"))
        assert [r.entry.tool for r in await log.tail(5)] == ["t.just_now"]


async def test_a_cancelled_call_keeps_its_row_when_the_queue_is_full(database_url: str) -> None:
    """Regression: with the queue full, a call cancelled while recording lost its row (seen under load)."""
    async with Database(database_url) as db:
        async with AuditLog(db, queue_size=1, linger=600) as log:
            await log.record(entry(tool="t.first"))  # the writer takes it and lingers for more
            await log.record(entry(tool="t.second"))  # fills the queue
            with anyio.CancelScope() as scope:
                scope.cancel()
                await log.record(entry(tool="t.cancelled"))
        assert [r.entry.tool for r in await AuditLog(db).tail(5)] == ["t.first", "t.second", "t.cancelled"]


async def test_a_pooled_postgres_connection_dropped_while_idle_is_replaced(postgres_url: str) -> None:
    """The one-round-trip liveness check at checkout (after FRESH_FOR s idle) replaces a connection the
    server dropped meanwhile (a restart, an idle timeout): the next transaction works, on a new backend."""
    import asyncpg
    from tests.conftest import POSTGRES_ADMIN_URL

    from toolbridge.storage._database import FRESH_FOR

    async with Database(postgres_url) as db:
        async with db.transaction() as conn:
            first = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await anyio.sleep(FRESH_FOR)  # idle at least that long: checked before it is used
        async with db.transaction() as conn:
            second = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first


async def test_a_sqlite_transaction_cancelled_at_any_point_leaves_no_connection_to_terminate(
    sqlite_url: str,
) -> None:
    """Regression: a transaction cancelled while it committed or rolled back made SQLAlchemy invalidate and
    terminate its aiosqlite connection, with a close task that could wait forever on the connection's
    stopped thread; a pipeline worker process then never exited (asyncio.run waits for every task)."""
    invalidated: list[object] = []
    async with Database(sqlite_url) as db:
        sa.event.listen(db.engine.sync_engine, "invalidate", lambda *args: invalidated.append(args))
        for k in range(80):  # cancel after k loop iterations: before, during and after each step
            with anyio.CancelScope() as scope:

                async def cancel_after(k: int, scope: anyio.CancelScope = scope) -> None:
                    for _ in range(k):
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_after, k)
                    async with db.transaction() as conn:
                        await conn.execute(audit_head.update().values(seq=audit_head.c.seq))
                    await anyio.sleep_forever()  # until cancelled
        async with db.transaction() as conn:  # still usable
            assert (await conn.execute(sa.select(audit_head.c.seq))).scalar_one() == 0
    assert invalidated == []
    lingering = [t for t in asyncio.all_tasks() if "terminate" in repr(t.get_coro())]
    assert lingering == []
