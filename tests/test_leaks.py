"""The leak checks themselves (tests/_leaks.py) find what they are there to find."""

from __future__ import annotations

import secrets

import pytest

from tests._leaks import assert_absent, encoded, postgres_dump, postgres_wal

pytestmark = pytest.mark.anyio


async def test_the_write_ahead_log_holds_a_value_the_tables_no_longer_do(postgres_url: str) -> None:
    import asyncpg

    value = f"canary-{secrets.token_urlsafe(18)}"
    async with postgres_wal(postgres_url) as read:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute("CREATE TABLE notes (body text)")
            await conn.execute("INSERT INTO notes VALUES ($1)", value)
            await conn.execute("UPDATE notes SET body = 'encrypted'")
        finally:
            await conn.close()
        log = await read()
    assert_absent([value], "", await postgres_dump(postgres_url), forms=encoded)
    with pytest.raises(AssertionError, match="is in the database files"):
        assert_absent([value], "", log, forms=encoded)
