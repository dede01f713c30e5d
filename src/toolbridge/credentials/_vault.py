"""The vault: secrets sealed with AES-GCM envelope encryption, stored as ciphertext only.

Each secret gets its own random 256-bit data key; the data key is wrapped (AES-GCM) by the current master
key, whose id is stored beside the ciphertext. Rotating the master key re-wraps data keys only — secret
ciphertext never changes — row by row with a compare-and-set, while servers keep reading and writing.

The key fence (table ``vault_fence``, one row) names the master key the last rotation moved to. Every
write holds it for the rest of its transaction (PostgreSQL: ``FOR SHARE``; SQLite: by writing it, which
takes the database's one write lock) and seals only with a key that is, or follows, the fence's. A
rotation moves the fence before each re-wrap pass: it waits for the writes that hold it, so a write sealed
with the old key is committed before the pass that catches it, and any later write seals with the new key
(or, in a process that lacks it, is refused rather than stored where no one could open it).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass, field

import anyio
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncConnection

from toolbridge.audit import AuditLog, args_digest, audit_entry
from toolbridge.credentials._keys import KeyFile, Keyring, KeySource, MasterKey
from toolbridge.credentials._secret import Secret
from toolbridge.credentials._tables import vault_fence, vault_secrets
from toolbridge.errors import ConfigurationError
from toolbridge.storage import Database

__all__ = ["Sealed", "Vault", "VaultError", "open_sealed", "rewrap_all", "rotate_master_key", "seal"]

logger = logging.getLogger("toolbridge.credentials")
_NONCE = 12


class VaultError(ConfigurationError):
    """A secret cannot be opened: its master key is missing, or the ciphertext was altered."""

    code = "vault_error"


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    wrapped_key: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)


def seal(ring: Keyring, name: str, plaintext: bytes) -> Sealed:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, name.encode())
    return Sealed(ring.current.id, _wrap(ring.current, data_key), ciphertext)


def open_sealed(ring: Keyring, name: str, sealed: Sealed) -> bytes:
    data_key = _unwrap(ring, sealed)
    try:
        return AESGCM(data_key).decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], name.encode())
    except InvalidTag:
        raise VaultError(f"secret {name!r} failed its integrity check", hint="the row was altered") from None


def rewrap(ring: Keyring, sealed: Sealed) -> Sealed:
    """The same secret, its data key wrapped by the current master key."""
    return Sealed(ring.current.id, _wrap(ring.current, _unwrap(ring, sealed)), sealed.ciphertext)


def _wrap(key: MasterKey, data_key: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(key.material).encrypt(nonce, data_key, b"toolbridge-dk:" + key.id.encode())


def _unwrap(ring: Keyring, sealed: Sealed) -> bytes:
    key = ring.get(sealed.key_id)
    if key is None:
        raise VaultError(
            f"a secret is sealed with master key {sealed.key_id}, which this process does not have",
            hint="use the key file or TOOLBRIDGE_MASTER_KEY this database was set up with",
        )
    wrapped = sealed.wrapped_key
    try:
        return AESGCM(key.material).decrypt(
            wrapped[:_NONCE], wrapped[_NONCE:], b"toolbridge-dk:" + key.id.encode()
        )
    except InvalidTag:
        raise VaultError("a data key failed its integrity check", hint="the row was altered") from None


class Vault:
    """Named secrets in the database, sealed with the keys from ``keys``."""

    def __init__(self, database: Database, keys: KeySource | None = None) -> None:
        """Without ``keys`` the vault seals and opens nothing (connections configured with their secret,
        e.g. a hand-built hub's, never reach it); using it then says how to give it a master key."""
        self.database = database
        self._keys = keys

    @property
    def keys(self) -> KeySource:
        if self._keys is None:
            raise ConfigurationError(
                "the vault has no master key", hint="build it with keys (a KeyFile or StaticKeys)"
            )
        return self._keys

    @keys.setter
    def keys(self, keys: KeySource) -> None:
        self._keys = keys

    async def put(self, name: str, secret: Secret) -> None:
        async with self.database.transaction() as conn:
            await self.write(conn, name, secret)

    async def get(self, name: str) -> Secret:
        async with self.database.transaction() as conn:
            found = await self.read(conn, name)
        if found is None:
            raise ConfigurationError(
                f"the vault has no secret named {name!r}",
                hint=f"store it with 'toolbridge secrets set {name}' (the value on standard input)",
            )
        return found

    async def delete(self, name: str) -> bool:
        async with self.database.transaction() as conn:
            return await self.remove(conn, name)

    async def names(self) -> list[str]:
        async with self.database.transaction() as conn:
            rows = await conn.execute(sa.select(vault_secrets.c.name).order_by(vault_secrets.c.name))
        return [r.name for r in rows]

    # -- inside a caller's transaction --------------------------------------------------------------

    async def write(self, conn: AsyncConnection, name: str, secret: Secret) -> None:
        fence = await _hold_fence(conn)
        ring = self.keys.keyring()  # after the fence: a rotation that moved it wrote the key file first
        if fence and ring.get(fence) is None:
            raise VaultError(
                f"the vault's secrets are sealed with master key {fence} since its last rotation, "
                "and this process does not have that key: a secret it sealed could not be opened "
                "once the old key is dropped",
                hint="give this process the current key file, or the new TOOLBRIDGE_MASTER_KEY "
                "(the old one in TOOLBRIDGE_MASTER_KEY_PREVIOUS), and restart it",
            )
        sealed = seal(ring, name, secret.reveal().encode())
        values = {
            "key_id": sealed.key_id,
            "wrapped_key": sealed.wrapped_key,
            "ciphertext": sealed.ciphertext,
            "updated_at": dt.datetime.now(dt.UTC),
        }
        updated = await conn.execute(
            vault_secrets.update().where(vault_secrets.c.name == name).values(values)
        )
        if updated.rowcount == 0:
            await conn.execute(vault_secrets.insert().values(name=name, **values))

    async def read(self, conn: AsyncConnection, name: str) -> Secret | None:
        row = (await conn.execute(sa.select(vault_secrets).where(vault_secrets.c.name == name))).first()
        if row is None:
            return None
        sealed = Sealed(row.key_id, row.wrapped_key, row.ciphertext)
        return Secret(open_sealed(self.keys.keyring(), name, sealed).decode())

    async def remove(self, conn: AsyncConnection, name: str) -> bool:
        result = await conn.execute(vault_secrets.delete().where(vault_secrets.c.name == name))
        return result.rowcount > 0


async def _hold_fence(conn: AsyncConnection) -> str:
    """The fence's key id ('' before the first rotation), held until ``conn``'s transaction ends."""
    t = vault_fence.c
    if conn.dialect.name == "sqlite":  # a read takes no lock there: write the row to take the write lock
        await conn.execute(vault_fence.update().where(t.id == 1).values(key_id=t.key_id))
        query = sa.select(t.key_id).where(t.id == 1)
    else:
        query = sa.select(t.key_id).where(t.id == 1).with_for_update(read=True)
    return str((await conn.execute(query)).scalar() or "")


@dataclass(frozen=True, slots=True)
class Rotation:
    old_key_ids: tuple[str, ...]
    new_key_id: str
    rewrapped: int


async def rotate_master_key(
    database: Database, key_file: KeyFile, *, settle: float = 0.0, audit: AuditLog | None = None
) -> Rotation:
    """Re-wrap every data key with a new master key while servers keep serving.

    1. the key file gets the new key as current, the old ones kept for reading (servers re-read it);
    2. the key fence moves to the new key, once every write holding it has committed (module docstring);
    3. every row sealed with another key is re-wrapped (compare-and-set on its key id and wrapped key);
    4. after ``settle`` seconds (a margin; the fence already orders the writers), one more pass;
    5. the old keys are dropped from the file: from then on the old key alone opens nothing.
    """
    old = key_file.keyring()
    new = MasterKey.generate()
    ring = Keyring(new, (old.current, *old.previous))
    key_file.write(ring)
    count = await rewrap_all(database, ring)
    await anyio.sleep(settle)
    count += await rewrap_all(database, ring)
    key_file.write(Keyring(new))
    logger.info("master key rotated to %s; %d data keys re-wrapped", new.id, count)
    if audit is not None:
        digest = args_digest({"from": list(old.ids), "to": new.id, "rewrapped": count})
        await audit.record(audit_entry(secrets.token_hex(8), "operator", "(credentials.rotate)", digest))
    return Rotation(old.ids, new.id, count)


async def rewrap_all(database: Database, ring: Keyring) -> int:
    """Move the key fence to ``ring.current`` (waiting for the writes that hold it), then re-wrap every
    data key not sealed with it; the number re-wrapped."""
    async with database.transaction() as conn:
        await conn.execute(
            vault_fence.update()
            .where(vault_fence.c.id == 1)
            .values(key_id=ring.current.id, updated_at=dt.datetime.now(dt.UTC))
        )
    count = 0
    while True:
        async with database.transaction() as conn:
            rows = (
                await conn.execute(
                    sa.select(vault_secrets).where(vault_secrets.c.key_id != ring.current.id).limit(200)
                )
            ).all()
        if not rows:
            return count
        for row in rows:
            count += await _rewrap_one(database, ring, row)


async def _rewrap_one(database: Database, ring: Keyring, row: sa.Row[tuple[object, ...]]) -> int:
    m = row._mapping
    fresh = rewrap(ring, Sealed(str(m["key_id"]), bytes(m["wrapped_key"]), bytes(m["ciphertext"])))
    t = vault_secrets.c
    async with database.transaction() as conn:
        result = await conn.execute(
            vault_secrets.update()
            .where(t.name == m["name"], t.key_id == m["key_id"], t.wrapped_key == m["wrapped_key"])
            .values(key_id=fresh.key_id, wrapped_key=fresh.wrapped_key)
        )
    return int(result.rowcount)  # 0: a writer replaced the row meanwhile (sealed with the new key)
