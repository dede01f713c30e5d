"""The database: one async engine, migrated on open.

SQLite (the default) runs in WAL mode with a busy timeout so several processes — a server and the CLI —
can share one file; ``sqlite:///:memory:`` means a private temporary file removed on close, so that
concurrent tasks get their own connections. PostgreSQL is used by URL; migrations take an advisory lock
there so replicas that start together migrate once.

A pooled PostgreSQL connection is checked with one round trip (``;``) when it is taken from the pool
after sitting there ``FRESH_FOR`` seconds or more: a connection the server dropped meanwhile (a restart,
an idle timeout) is replaced before it is used. One given back a moment ago is used as it is (as
HikariCP's ``aliveBypassWindowMs``): SQLAlchemy's ``pool_pre_ping`` costs three round trips through
asyncpg (``BEGIN``, ``;``, ``ROLLBACK``) on every checkout, i.e. every transaction.

On SQLite, the transactions of one process take turns, first come first served (``_turns.py``): a write
that finds the file locked by another task of this process would otherwise sleep in SQLite's busy handler.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import pathlib
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from toolbridge.errors import ConfigurationError, StorageError

from ._turns import Turns

__all__ = ["Database", "MEMORY_URL", "sqlite_file"]

logger = logging.getLogger("toolbridge.storage")

MEMORY_URL = "sqlite+aiosqlite:///:memory:"
_MIGRATIONS = pathlib.Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x7B_1D_6E  # advisory lock id for PostgreSQL migrations
SCHEMA_HEAD = "0014"
"""The newest migration's revision (a test keeps it equal to the migrations' head)."""
POOL_SIZE = 20
"""PostgreSQL connections a process keeps open for reuse, by default (``server.database_pool``): a
connection opened beyond them is closed when given back, and opening one costs the server a process
(a fork, a cold catalog cache, statements prepared again). SQLAlchemy's default of 5 made a pipeline
worker running 32 runs open and close connections continuously: half of PostgreSQL's CPU."""
FRESH_FOR = 0.5
"""Seconds a pooled PostgreSQL connection may sit idle and still be used without a liveness check."""


class Database:
    """Owns the engine. Use as ``async with Database(url) as db``; the schema is migrated on entry."""

    def __init__(
        self,
        url: str = MEMORY_URL,
        *,
        echo: bool = False,
        pool_size: int = POOL_SIZE,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.url = _normalize(url)
        self.pool_size = pool_size
        """PostgreSQL: connections kept open for reuse (as many again may be opened in a burst, and closed
        when given back)."""
        self.dialect = sa.make_url(self.url).get_backend_name()
        """``sqlite`` or ``postgresql``."""
        self._echo = echo
        self._engine: AsyncEngine | None = None
        self._autocommitting: AsyncEngine | None = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.turns: Turns | None = None
        """SQLite: this process's transactions take turns (module docstring); made on open."""
        self._clock = clock or _utc_now
        """This machine's clock (injected by tests, to play a machine whose clock is off)."""
        self.clock_offset = 0.0
        """Seconds the database server's clock is ahead of this machine's: measured on open (PostgreSQL;
        SQLite's processes share one machine's clock), so that :meth:`now` reads the server's time."""

    def now(self) -> dt.datetime:
        """The database server's time, read on this machine: its clock corrected by :attr:`clock_offset`.

        Leases and expiries that processes on several machines write and compare (idempotency claims,
        outbox items, event deliveries, pipeline runs, token refreshes) are in this time, so a replica
        whose clock is off by more than a lease neither takes over work another still holds nor holds
        work the others think abandoned."""
        return self._clock() + dt.timedelta(seconds=self.clock_offset)

    def time(self) -> float:
        """:meth:`now` in seconds since the epoch."""
        return self.now().timestamp()

    async def sync_clock(self) -> float:
        """Measure :attr:`clock_offset` again (PostgreSQL: the server's ``clock_timestamp()`` against the
        middle of the round trip, the quickest of three) and return it; done on open."""
        if self.dialect != "postgresql":
            return self.clock_offset
        quickest = (float("inf"), self.clock_offset)
        for _ in range(3):
            async with self.autocommit() as conn:
                sent = self._clock()
                server = (await conn.execute(sa.text("SELECT clock_timestamp()"))).scalar_one()
                back = self._clock()
            trip = (back - sent).total_seconds()
            offset = (server - (sent + (back - sent) / 2)).total_seconds()
            if trip < quickest[0]:
                quickest = (trip, offset)
        self.clock_offset = quickest[1]
        return self.clock_offset

    async def follow_clock(self, every: float = 60.0) -> None:
        """Measure :attr:`clock_offset` again every ``every`` seconds until cancelled (a machine clock
        stepped while the process runs — a VM resumed, NTP correcting a large error — is followed within
        that time). Run by the hub beside its idempotency claims' heartbeat."""
        while True:
            await anyio.sleep(every)
            try:
                await self.sync_clock()
            except StorageError as exc:  # the database is away: the last offset stands
                logger.warning("could not read the database server's clock: %s", exc)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the database is not open; use 'async with Database(...)'")
        return self._engine

    async def __aenter__(self) -> Database:
        url = self.url
        if _is_memory(url):
            # A private file that lives as long as this object is open: unlike ':memory:', it lets the
            # audit writer and callers use separate connections concurrently.
            self._scratch = tempfile.TemporaryDirectory(prefix="toolbridge-")
            url = f"sqlite+aiosqlite:///{self._scratch.name}/toolbridge.db"
        self._engine = _create_engine(url, echo=self._echo, pool_size=self.pool_size)
        self._autocommitting = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self.turns = Turns() if self.dialect == "sqlite" else None
        try:
            await self.migrate()
            await self.sync_clock()
        except BaseException:  # a failed or cancelled migration: dispose of the engine, then re-raise
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = self._autocommitting = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_HEAD`; a database already there costs one query.

        The whole migration is one transaction, taken before the recorded revision is read: a process
        killed or failing half-way leaves the schema as it was (the next start migrates again), and
        processes that start together on an old schema migrate once — on PostgreSQL under an advisory
        lock, on SQLite under the write lock of ``BEGIN IMMEDIATE`` (the others wait for it, then find the
        schema current). A schema this code does not know (a newer toolbridge migrated it) is refused
        unchanged, with a hint."""
        try:
            if await self._revision() == SCHEMA_HEAD:
                return
            if self.dialect == "sqlite":
                migrating = _create_migrating_engine(self.engine.url, echo=self._echo)
                try:
                    async with migrating.begin() as conn:  # BEGIN IMMEDIATE: this file's write lock
                        await conn.run_sync(_upgrade)
                finally:
                    await migrating.dispose()
                return
            async with self.engine.begin() as conn:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK})
                await conn.run_sync(_upgrade)
        except _UnknownRevision as exc:
            raise StorageError(
                f"cannot open the database at {self.redacted_url}: its schema {exc.revision} is newer than "
                f"this toolbridge, which knows up to {SCHEMA_HEAD}",
                hint="run the newer toolbridge version, or restore the backup taken before upgrading "
                "(nothing was changed)",
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(
                f"cannot open or migrate the database at {self.redacted_url}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}",
                hint=_open_hint(self.url, exc),
            ) from exc

    async def _revision(self) -> str | None:
        """The schema revision recorded in the database (None before the first migration)."""
        try:
            async with self.engine.connect() as conn:
                return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        except sa.exc.DBAPIError:
            return None  # no alembic_version table yet

    @property
    def redacted_url(self) -> str:
        return sa.make_url(self.url).render_as_string(hide_password=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction; database errors become :class:`StorageError`.

        On SQLite it waits for this process's turn first (module docstring)."""
        turns = self.turns
        if turns is None or turns.inside():
            async with self._begin() as conn:
                yield conn
            return
        token = await turns.take()
        mark = turns.enter(token)
        try:
            async with self._begin() as conn:
                yield conn
        finally:
            turns.leave(mark)
            turns.give_back(token)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection on which each statement commits on its own, with no ``BEGIN``/``COMMIT``
        round trips around it (PostgreSQL: for a write that is one statement); database errors become
        :class:`StorageError`. On SQLite it is :meth:`transaction` (its statements commit together)."""
        if self.dialect == "sqlite":
            async with self.transaction() as conn:
                yield conn
            return
        if self._autocommitting is None:
            raise RuntimeError("the database is not open; use 'async with Database(...)'")
        with _storage_errors():
            async with self._autocommitting.connect() as conn:
                yield conn

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        with _storage_errors():
            async with self._begun() as conn:
                yield conn

    @asynccontextmanager
    async def _begun(self) -> AsyncIterator[AsyncConnection]:
        """``engine.begin()``; on SQLite shielded from cancellation, which takes effect once the
        transaction has ended and its connection is back in the pool (milliseconds: a SQLite transaction
        is a few local statements). Cancelled inside, SQLAlchemy invalidates the aiosqlite connection and
        terminates it with a close in a task of its own racing a forced stop of the connection's thread;
        that task could wait forever on the thread, and a worker process then never exited
        (``asyncio.run`` waits for every task)."""
        if self.dialect != "sqlite":
            async with self.engine.begin() as conn:
                yield conn
            return
        with anyio.CancelScope(shield=True):
            async with self.engine.begin() as conn:
                yield conn


@contextmanager
def _storage_errors() -> Iterator[None]:
    """SQLAlchemy's and the socket's errors as :class:`StorageError`."""
    try:
        yield
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(
            f"database error: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            hint="the database may be down or locked; retry shortly",
        ) from exc


def _without_password(url: str) -> str:
    """``url`` with the password of its user part masked (the URL may not parse)."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _normalize(url: str) -> str:
    try:
        parsed = sa.make_url(url)
        parsed.port  # noqa: B018 - a port that is no number raises here, not at the first connection
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"{_without_password(url)!r} is not a database URL ({exc})",
            hint="use 'sqlite+aiosqlite:///path/to/file.db' or 'postgresql+asyncpg://user@host:5432/db'",
        ) from exc
    if parsed.drivername in ("postgres", "postgres+asyncpg"):  # the scheme Heroku and others print
        parsed = parsed.set(drivername="postgresql+asyncpg")
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and driver != "aiosqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql" and driver != "asyncpg":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"database backend {backend!r} is not supported", hint="use SQLite or PostgreSQL"
        )
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        _check_sqlite_path(pathlib.Path(parsed.database))
    return parsed.render_as_string(hide_password=False)


def _check_sqlite_path(path: pathlib.Path) -> None:
    """The SQLite file's folder exists (created) and both are writable, or a located error says why."""
    hint = "choose a writable path with --database (or server.database in the config)"
    where = str(path.absolute())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = f"{exc.filename!r} is a file" if isinstance(exc, FileExistsError) else exc.strerror or str(exc)
        raise ConfigurationError(
            f"cannot create the folder of the SQLite database {where!r}: {why}", hint=hint
        ) from exc
    if path.is_dir():
        raise ConfigurationError(f"the SQLite database {where!r} is a folder, not a file", hint=hint)
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise ConfigurationError(
            f"the SQLite database {where!r} cannot be written: {str(target.absolute())!r} is read-only "
            "for this user",
            hint=hint,
        )


def _open_hint(url: str, exc: BaseException | None = None) -> str:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return "check that the database server is running and the URL is right"
    where = str(pathlib.Path(parsed.database or "").absolute())
    message = str(exc).lower() if exc is not None else ""
    if "locked" in message or "busy" in message:
        return f"another process holds {where!r} locked; retry when it is done, or use another --database"
    if exc is None or any(
        word in message for word in ("readonly", "read-only", "unable to open", "permission", "disk i/o")
    ):
        return f"check that {where!r} and its folder are writable, or use another --database"
    return (
        f"the schema of {where!r} is not what this toolbridge expects and nothing was changed: restore the "
        "backup taken before upgrading (docs/configuration.md#upgrading), or use another --database"
    )


def sqlite_file(url: str) -> pathlib.Path | None:
    """The file of a SQLite database URL (None: another database, or in memory)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return pathlib.Path(parsed.database)


def _is_memory(url: str) -> bool:
    parsed = sa.make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def _create_engine(url: str, *, echo: bool, pool_size: int) -> AsyncEngine:
    if sa.make_url(url).get_backend_name() != "sqlite":
        engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)
        event.listen(engine.sync_engine, "connect", _idle_since)
        event.listen(engine.sync_engine, "checkin", _idle_since)
        event.listen(engine.sync_engine, "checkout", _alive)
        return engine
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _idle_since(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _alive(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Check a connection taken from the pool after ``FRESH_FOR`` seconds idle (module docstring);
    DisconnectionError makes the pool replace it and try again."""
    since = record.info.get("idle_since")
    if since is not None and time.monotonic() - since < FRESH_FOR:
        return
    try:
        dbapi_conn.run_async(lambda driver: driver.fetchrow(";"))
    except Exception as exc:  # asyncpg's or the socket's: this connection is gone, the pool opens another
        raise DisconnectionError(f"pooled connection lost: {exc.__class__.__name__}: {exc}") from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    _pragmas(dbapi_conn, busy_timeout_ms=30_000)


def _pragmas(dbapi_conn: Any, *, busy_timeout_ms: int) -> None:
    cursor = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        f"busy_timeout={busy_timeout_ms}",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


MIGRATION_WAIT = 3600.0
"""SQLite: seconds a process starting on an old schema waits for the write lock of another process that is
migrating it (a large database takes minutes), before it gives up with 'database is locked'."""


def _create_migrating_engine(url: sa.URL, *, echo: bool) -> AsyncEngine:
    """SQLite: an engine of one unpooled connection whose transactions begin with ``BEGIN IMMEDIATE``.

    The sqlite3 driver sends no ``BEGIN`` before DDL (its legacy transaction control): under the pooled
    engine each ``ALTER``/``CREATE`` of a migration committed on its own, so a process killed half-way
    (or a migration failing) left part of a migration applied under the old revision, and every later
    start failed ('duplicate column name'). Here the driver's own transaction control is off
    (``isolation_level=None``) and SQLAlchemy's ``begin`` event emits the ``BEGIN`` (SQLAlchemy's
    documented recipe for sqlite3 and aiosqlite); ``IMMEDIATE`` takes the write lock at once, so the
    revision is read under it and a second process waits instead of migrating the same schema again."""
    engine = create_async_engine(
        url,
        echo=echo,
        poolclass=sa.pool.NullPool,
        connect_args={"timeout": MIGRATION_WAIT, "isolation_level": None},
    )
    wait_ms = int(MIGRATION_WAIT * 1000)
    event.listen(engine.sync_engine, "connect", lambda conn, _record: _pragmas(conn, busy_timeout_ms=wait_ms))
    event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


class _UnknownRevision(Exception):
    """The database records a schema revision that none of this code's migrations has."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


def _upgrade(sync_conn: sa.Connection) -> None:
    """Migrate to the head inside the caller's transaction (its lock held): read the recorded revision,
    refuse one this code does not know, log what is done when there is something to do."""
    from alembic import command  # imported on first open, not with the package
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = sync_conn
    current = MigrationContext.configure(sync_conn).get_current_revision()
    if current == SCHEMA_HEAD:
        return  # another process migrated it while this one waited for the lock
    if current is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(current)
        except CommandError:
            raise _UnknownRevision(current) from None
    logger.info("migrating the database from %s to %s", current or "an empty schema", SCHEMA_HEAD)
    started = time.monotonic()
    command.upgrade(config, "head")
    logger.info("migrated the database to %s: done in %.1f s", SCHEMA_HEAD, time.monotonic() - started)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
