"""The vault: envelope encryption, key files, secret references, the masked Secret type."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
import sqlalchemy as sa

from toolbridge.credentials import (
    KeyFile,
    Keyring,
    MasterKey,
    Secret,
    SecretRef,
    StaticKeys,
    Vault,
    VaultError,
    resolve_reference,
    rotate_master_key,
)
from toolbridge.credentials._tables import vault_secrets
from toolbridge.credentials._vault import Sealed, open_sealed, seal
from toolbridge.errors import ConfigurationError
from toolbridge.storage import Database

pytestmark = pytest.mark.anyio


def test_secret_is_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("hunter2-canary")
    assert repr(secret) == str(secret) == f"{secret}" == "Secret('***')"
    assert "hunter2" not in repr({"token": secret})
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("token %s %r", secret, secret)
    assert "hunter2" not in caplog.text
    assert secret.reveal() == "hunter2-canary"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_seal_and_open_roundtrip_and_tamper_detection() -> None:
    ring = Keyring(MasterKey.generate())
    sealed = seal(ring, "api", b"s3cret")
    assert b"s3cret" not in sealed.ciphertext + sealed.wrapped_key
    assert open_sealed(ring, "api", sealed) == b"s3cret"
    with pytest.raises(VaultError, match="integrity"):
        open_sealed(ring, "other-name", sealed)  # the name is bound as associated data
    flipped = Sealed(
        sealed.key_id, sealed.wrapped_key, sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])
    )
    with pytest.raises(VaultError):
        open_sealed(ring, "api", flipped)
    with pytest.raises(VaultError, match="does not have"):
        open_sealed(Keyring(MasterKey.generate()), "api", sealed)


def test_each_secret_has_its_own_data_key() -> None:
    ring = Keyring(MasterKey.generate())
    a, b = seal(ring, "x", b"same"), seal(ring, "x", b"same")
    assert a.wrapped_key != b.wrapped_key and a.ciphertext != b.ciphertext


def test_master_key_from_base64_is_checked() -> None:
    key = MasterKey.generate()
    assert MasterKey.from_base64(key.encoded()) == key
    with pytest.raises(ConfigurationError, match="base64"):
        MasterKey.from_base64("not base64!")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        MasterKey.from_base64("c2hvcnQ=")
    assert key.encoded() not in repr(key)


def test_key_file_is_created_0600_and_refused_when_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    ring = KeyFile(path).create()
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert KeyFile(path).keyring() == ring
    with pytest.raises(ConfigurationError, match="already exists"):
        KeyFile(path).create()
    os.chmod(path, 0o640)
    with pytest.raises(ConfigurationError, match="group or others") as info:
        KeyFile(path).keyring()
    assert info.value.hint == f"chmod 600 {path}"


def test_key_file_missing_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist") as info:
        KeyFile(tmp_path / "nope.key").keyring()
    assert "keys init" in (info.value.hint or "")


async def test_references_env_file_vault(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    assert (await resolve_reference("env:TB_X", environ={"TB_X": "v"})).reveal() == "v"
    assert (await resolve_reference("file:tok", base_dir=tmp_path)).reveal() == "from-file"
    with pytest.raises(ConfigurationError, match="not set"):
        await resolve_reference("env:TB_MISSING", environ={})
    with pytest.raises(ConfigurationError, match="not a secret reference") as info:
        SecretRef.parse("ghp_thisIsAPastedToken")
    assert "ghp_" not in str(info.value)
    async with Database(sqlite_url) as db:
        vault = Vault(db, StaticKeys(Keyring(MasterKey.generate())))
        await vault.put("gh", Secret("from-vault"))
        assert (await resolve_reference("vault:gh", vault=vault.get)).reveal() == "from-vault"


async def test_vault_stores_only_ciphertext(database_url: str) -> None:
    async with Database(database_url) as db:
        vault = Vault(db, StaticKeys(Keyring(MasterKey.generate())))
        await vault.put("one", Secret("canary-plaintext-1"))
        await vault.put("one", Secret("canary-plaintext-2"))
        assert (await vault.get("one")).reveal() == "canary-plaintext-2"
        async with db.transaction() as conn:
            rows = (await conn.execute(sa.select(vault_secrets))).all()
        assert len(rows) == 1 and b"canary" not in bytes(rows[0].ciphertext)
        assert await vault.names() == ["one"]
        assert await vault.delete("one")
        with pytest.raises(ConfigurationError, match="no secret named"):
            await vault.get("one")


async def test_rotation_rewraps_and_drops_the_old_key(tmp_path: Path, sqlite_url: str) -> None:
    key_file = KeyFile(tmp_path / "master.key")
    old = key_file.create()
    async with Database(sqlite_url) as db:
        vault = Vault(db, key_file)
        for i in range(5):
            await vault.put(f"s{i}", Secret(f"value-{i}"))
        rotation = await rotate_master_key(db, key_file, settle=0)
        assert rotation.rewrapped == 5 and rotation.old_key_ids == (old.current.id,)
        assert key_file.keyring().ids == (rotation.new_key_id,)
        assert [(await vault.get(f"s{i}")).reveal() for i in range(5)] == [f"value-{i}" for i in range(5)]
        with pytest.raises(VaultError):
            await Vault(db, StaticKeys(old)).get("s0")
