"""Master-key rotation while calls run: no call fails; afterwards the old key alone opens nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from tests._patience import patience
from tests.credentials.fakes import LOCAL, FakeAuthServer, make_hub, oauth_config
from toolbridge.credentials import (
    KeyFile,
    Material,
    Secret,
    StaticKeys,
    TokenSet,
    Vault,
    VaultError,
    rotate_master_key,
)
from toolbridge.credentials._tables import vault_secrets
from toolbridge.credentials._vault import Rotation
from toolbridge.errors import ToolbridgeError
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


async def test_rotation_while_calls_run(tmp_path: Path, database_url: str) -> None:
    key_path = tmp_path / "master.key"
    old = KeyFile(key_path).create()
    server = FakeAuthServer(expires_in=3600)
    db = Database(database_url)
    hub, manager, client = make_hub(
        db, server, {"gh": oauth_config()}, clock=lambda: 1_000_000.0, cache_ttl=0
    )
    manager.vault.keys = KeyFile(key_path)  # the server's own view of the key file (re-read on change)
    failures: list[str] = []
    calls = writes = 0
    async with hub, client:
        await manager.add(
            "gh", "default", Material(tokens=TokenSet.from_response(server.issue(), now=1_000_000.0))
        )
        done = anyio.Event()

        async def caller() -> None:
            nonlocal calls
            while not done.is_set():
                try:
                    await hub.call(LOCAL, "gh.me")  # cache_ttl=0: every call reads and opens the vault
                    calls += 1
                except ToolbridgeError as exc:
                    failures.append(f"{exc.code}: {exc.message}")

        async def writer() -> None:
            nonlocal writes
            while not done.is_set():
                await manager.vault.put(f"note-{writes % 5}", Secret(f"value-{writes}"))
                writes += 1
                await anyio.sleep(0.005)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(caller)
            tg.start_soon(writer)
            await anyio.sleep(0.1)
            before = calls
            rotation = await rotate_master_key(db, KeyFile(key_path), settle=0.3)
            during = calls - before
            done.set()
        assert failures == []
        assert during > 0 and writes > 0, "calls and writes ran while the key rotated"
        assert KeyFile(key_path).keyring().ids == (rotation.new_key_id,)
        async with db.transaction() as conn:
            rows = (await conn.execute(sa.select(vault_secrets.c.name, vault_secrets.c.key_id))).all()
        assert rows and {r.key_id for r in rows} == {rotation.new_key_id}
        stale = Vault(db, StaticKeys(old))
        for row in rows:
            with pytest.raises(VaultError):
                await stale.get(row.name)
        assert (await hub.call(LOCAL, "gh.me")).value == {"user": "alice"}


async def test_a_write_in_flight_during_a_rotation_is_rewrapped(tmp_path: Path, database_url: str) -> None:
    """A vault write whose transaction sealed with the old key and commits while ``keys rotate`` runs (in
    another process: here another Database, so SQLite's in-process turns do not order them) must not be
    left sealed with a key the rotation then drops. The rotation waits for it (the key fence) and re-wraps
    it; without the fence it finished first and the row was stranded."""
    key_path = tmp_path / "master.key"
    old = KeyFile(key_path).create()
    async with Database(database_url) as server_db, Database(database_url) as cli_db:
        vault = Vault(server_db, KeyFile(key_path))
        finished = anyio.Event()
        rotations: list[Rotation] = []

        async def rotate() -> None:
            rotations.append(await rotate_master_key(cli_db, KeyFile(key_path), settle=0))
            finished.set()

        async with anyio.create_task_group() as tg, server_db.transaction() as conn:
            await vault.write(conn, "in-flight", Secret("sealed with the old key"))
            tg.start_soon(rotate)
            with anyio.fail_after(patience(30)):
                while KeyFile(key_path).keyring().current.id == old.current.id:  # noqa: ASYNC110  # a file
                    await anyio.sleep(0.01)
            # the rotation runs: unfenced it finishes (dropping the old key) before this commit; fenced it
            # waits for the commit (the wait below is a bound for the unfenced case, not a race)
            with anyio.move_on_after(1.0):
                await finished.wait()
        (rotation,) = rotations
        assert KeyFile(key_path).keyring().ids == (rotation.new_key_id,)
        fresh = Vault(server_db, KeyFile(key_path))
        assert (await fresh.get("in-flight")).reveal() == "sealed with the old key"
        async with server_db.transaction() as conn:
            rows = (await conn.execute(sa.select(vault_secrets.c.key_id))).all()
        assert {r.key_id for r in rows} == {rotation.new_key_id}


async def test_a_writer_without_the_rotated_key_is_refused(tmp_path: Path, database_url: str) -> None:
    """After a rotation, a process still holding only the old key (a stale TOOLBRIDGE_MASTER_KEY) cannot
    write a secret that nobody could open once the old key is gone: it is refused, saying why."""
    key_path = tmp_path / "master.key"
    old = KeyFile(key_path).create()
    async with Database(database_url) as db:
        await Vault(db, KeyFile(key_path)).put("one", Secret("1"))
        rotation = await rotate_master_key(db, KeyFile(key_path), settle=0)
        stale = Vault(db, StaticKeys(old))
        with pytest.raises(VaultError, match=rotation.new_key_id) as refused:
            await stale.put("two", Secret("2"))
        assert "TOOLBRIDGE_MASTER_KEY" in (refused.value.hint or "")
        assert await Vault(db, KeyFile(key_path)).names() == ["one"]
