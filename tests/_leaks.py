"""Checks that secrets never reach what toolbridge writes: logs, responses, audit rows, database files."""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import sqlalchemy as sa

from toolbridge.storage import metadata


async def dump_tables(transaction: AbstractAsyncContextManager[Any]) -> str:
    """Every row of every toolbridge table (``repr`` per row); tables that do not exist are skipped."""
    lines = []
    async with transaction as conn:
        for table in metadata.sorted_tables:
            try:
                rows = (await conn.execute(sa.select(table))).all()
            except sa.exc.SQLAlchemyError:
                continue
            lines += [repr(tuple(row)) for row in rows]
    return "\n".join(lines)


async def database_files(folder: Path, pattern: str = "tb.db*") -> bytes:
    """The raw bytes of the SQLite database files (main, WAL, journal) in ``folder``."""
    return b"".join([await p.read_bytes() async for p in anyio.Path(folder).glob(pattern)])


async def postgres_dump(url: str) -> bytes:
    """Every table of the database at ``url`` as a plain dump would hold it: ``COPY … TO STDOUT`` (text
    format: ``bytea`` as hex, JSON as written) of every table in every schema but the system ones, those
    toolbridge's metadata does not name too."""
    import io

    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        sink = io.BytesIO()
        for schema, table in tables:
            await conn.copy_from_table(table, schema_name=schema, output=sink)
        return sink.getvalue()
    finally:
        await conn.close()


@asynccontextmanager
async def postgres_wal(url: str) -> AsyncIterator[Callable[[], Awaitable[bytes]]]:
    """PostgreSQL's write-ahead log as written while inside, raw: ``await read()`` gives its bytes from the
    start to now (every database of the server: other tests' too). What a table dump cannot show is there
    — a row written and then updated or deleted, as the server wrote it. The shared server recycles log
    segments after a checkpoint, so a temporary physical replication slot holds them back until the end
    (dropped with this connection). Needs a superuser, as the tests' trust login is."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "SELECT pg_create_physical_replication_slot($1, true, true)", f"tb_leaks_{secrets.token_hex(6)}"
        )
        start = await conn.fetchval("SELECT pg_current_wal_lsn()")  # asyncpg gives an LSN as an int
        size = int(await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"))

        async def read() -> bytes:
            end = await conn.fetchval("SELECT pg_current_wal_lsn()")
            chunks = []
            for segment in range(start - start % size, end, size):
                # an LSN inside the segment: pg_walfile_name gives the one before for a boundary
                name = await conn.fetchval("SELECT pg_walfile_name($1::pg_lsn)", segment + 1)
                first, last = max(start, segment) - segment, min(end, segment + size) - segment
                chunks.append(
                    await conn.fetchval(
                        "SELECT pg_read_binary_file('pg_wal/' || $1, $2, $3)", name, first, last - first
                    )
                )
            return b"".join(chunks)

        yield read
    finally:
        await conn.close()


def plain_and_quoted(value: str) -> list[str]:
    return [value, quote(value, safe="")]


def encoded(value: str) -> list[str]:
    """Every common encoding of ``value`` (written apart from the redaction code it checks): percent in
    upper and lower case, form encoding, base64 and base64url (also inside a longer base64 text), hex,
    HTML escapes and JSON string escapes."""
    quoted = quote(value, safe="")
    escaped = json.dumps(value)[1:-1]
    raw = value.encode()
    return [
        *_inside_base64(raw),
        raw.hex(),
        raw.hex().upper(),
        value,
        quoted,
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        html.escape(value),
        escaped,
        escaped.replace("/", "\\/"),
    ]


def _inside_base64(raw: bytes) -> list[str]:
    """The base64 characters that spell ``raw`` wherever it starts in a longer text (3 alignments), in the
    standard and the URL-safe alphabet: a secret inside a base64 blob (a JWT, a basic header, a cookie)."""
    found = []
    for offset in range(3):
        text = base64.b64encode(b"\0" * offset + raw + b"\0\0").decode()
        core = text[(offset * 4 + 2) // 3 : (offset + len(raw)) * 4 // 3]
        found += [core, core.translate(str.maketrans("+/", "-_"))]
    return found


def assert_absent(
    values: Iterable[str],
    corpus: str,
    files: bytes = b"",
    *,
    forms: Callable[[str], Iterable[str]] = plain_and_quoted,
    what: str = "a secret",
) -> None:
    """No form (plain, URL-quoted, …) of any of ``values`` is in ``corpus`` text or in ``files`` bytes."""
    for value in values:
        for form in forms(value):
            assert form not in corpus, f"{what} ({value[:9]}…) leaked"
            assert form.encode() not in files, f"{what} ({value[:9]}…) is in the database files"
