"""Connections in the database: rows with state and a token version, material sealed in the vault.

Writers of a connection's token set follow one protocol, safe across tasks, processes and replicas:

* **lease** — ``acquire_lease`` sets ``refresh_owner``/``refresh_until`` only if no live lease exists and the
  version is still the one the refresher read: at most one refresh per version goes to the token endpoint;
* **compare-and-set** — ``commit`` writes the new material and bumps ``token_version`` only if the version is
  still the expected one, in the same transaction as the vault write: a stale writer changes nothing (O3).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from toolbridge.credentials._secret import Secret
from toolbridge.credentials._tables import connections
from toolbridge.credentials._tokens import TokenSet
from toolbridge.credentials._vault import Vault
from toolbridge.errors import NotFound

__all__ = ["Connection", "ConnectionStore", "Material", "State"]

State = Literal["active", "expiring", "reauth_required", "revoked"]
STATES: tuple[State, ...] = ("active", "expiring", "reauth_required", "revoked")


@dataclass(frozen=True, slots=True)
class Material:
    """What the vault holds for one connection: a static secret, a token set, or both."""

    secret: Secret | None = None
    tokens: TokenSet | None = None

    def seal_text(self) -> Secret:
        doc = {
            "secret": self.secret.reveal() if self.secret else None,
            "tokens": json.loads(self.tokens.to_secret().reveal()) if self.tokens else None,
        }
        return Secret(json.dumps(doc))

    @classmethod
    def from_text(cls, text: Secret) -> Material:
        doc = json.loads(text.reveal())
        tokens = doc.get("tokens")
        return cls(
            Secret(doc["secret"]) if doc.get("secret") is not None else None,
            TokenSet.from_secret(Secret(json.dumps(tokens))) if tokens else None,
        )


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    connector: str
    account: str
    scheme: str
    state: State
    token_version: int
    expires_at: float | None
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    owner: str = ""
    """The principal id (``agent:alice``) it belongs to; ``""`` for a connection an operator shares."""

    def effective_state(self, now: float, skew: float) -> State:
        if self.state == "active" and self.expires_at is not None and now >= self.expires_at - skew:
            return "expiring"
        return self.state

    def document(self, now: float, skew: float) -> dict[str, Any]:
        """A description for people and agents: never any secret material."""
        return {
            "id": self.id,
            "connector": self.connector,
            "account": self.account,
            "owner": self.owner or None,
            "shared": not self.owner,
            "scheme": self.scheme,
            "state": self.effective_state(now, skew),
            "token_version": self.token_version,
            "expires_at": self.expires_at,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
        }


def _conn(row: sa.RowMapping) -> Connection:
    return Connection(
        row["id"],
        row["connector"],
        row["account"],
        row["scheme"],
        row["state"],
        int(row["token_version"]),
        row["expires_at"],
        row["last_error"],
        _aware(row["created_at"]),
        _aware(row["updated_at"]),
        row["owner"],
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _vault_name(connection_id: str) -> str:
    return f"connection:{connection_id}"


class ConnectionStore:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.database = vault.database

    async def save(
        self,
        connector: str,
        account: str,
        scheme: str,
        material: Material,
        *,
        expires_at: float | None = None,
        owner: str = "",
    ) -> Connection:
        """Create ``owner``'s connection, or replace the material of an existing one (a reconnect):
        version + 1. Another owner's connection of the same account name is a different connection."""
        now = dt.datetime.now(dt.UTC)
        c = connections.c
        mine = sa.select(connections).where(c.connector == connector, c.owner == owner, c.account == account)
        async with self.database.transaction() as conn:
            row = (await conn.execute(mine)).mappings().first()
            values = {
                "scheme": scheme,
                "state": "active",
                "expires_at": expires_at,
                "last_error": None,
                "refresh_owner": None,
                "refresh_until": None,
                "updated_at": now,
            }
            if row is None:
                ident = secrets.token_hex(8)
                await conn.execute(
                    connections.insert().values(
                        id=ident,
                        connector=connector,
                        account=account,
                        owner=owner,
                        token_version=1,
                        created_at=now,
                        **values,
                    )
                )
            else:
                ident = row["id"]
                await conn.execute(
                    connections.update()
                    .where(c.id == ident)
                    .values(token_version=c.token_version + 1, **values)
                )
            await self.vault.write(conn, _vault_name(ident), material.seal_text())
            fresh = (await conn.execute(sa.select(connections).where(c.id == ident))).mappings().one()
        return _conn(fresh)

    async def get(self, ident: str) -> Connection:
        async with self.database.transaction() as conn:
            row = (
                (await conn.execute(sa.select(connections).where(connections.c.id == ident)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no connection with id {ident!r}", hint="list them with GET /v1/connections")
        return _conn(row)

    async def find(
        self, connector: str, account: str | None = None, *, owner: str | None = None
    ) -> list[Connection]:
        """The connections of ``connector`` (of one ``owner`` — ``""``: the shared ones — if given)."""
        c = connections.c
        query = sa.select(connections).where(c.connector == connector)
        if account is not None:
            query = query.where(c.account == account)
        if owner is not None:
            query = query.where(c.owner == owner)
        async with self.database.transaction() as conn:
            rows = (await conn.execute(query.order_by(c.account))).mappings().all()
        return [_conn(r) for r in rows]

    async def list(self) -> list[Connection]:
        c = connections.c
        async with self.database.transaction() as conn:
            rows = (
                (await conn.execute(sa.select(connections).order_by(c.connector, c.account))).mappings().all()
            )
        return [_conn(r) for r in rows]

    async def load(self, ident: str) -> tuple[Connection, Material]:
        """The row and its material, read in one transaction (so they belong to one version)."""
        async with self.database.transaction() as conn:
            row = (
                (await conn.execute(sa.select(connections).where(connections.c.id == ident)))
                .mappings()
                .first()
            )
            text = await self.vault.read(conn, _vault_name(ident)) if row is not None else None
        if row is None or text is None:
            raise NotFound(f"no connection with id {ident!r}", hint="it may have been removed; reconnect")
        return _conn(row), Material.from_text(text)

    async def acquire_lease(self, ident: str, version: int, owner: str, *, now: float, ttl: float) -> bool:
        c = connections.c
        async with self.database.transaction() as conn:
            result = await conn.execute(
                connections.update()
                .where(
                    c.id == ident,
                    c.token_version == version,
                    c.state != "reauth_required",
                    sa.or_(c.refresh_until.is_(None), c.refresh_until < now),
                )
                .values(refresh_owner=owner, refresh_until=now + ttl)
            )
        return bool(result.rowcount == 1)

    async def release_lease(self, ident: str, owner: str, *, error: str | None = None) -> None:
        c = connections.c
        values: dict[str, Any] = {"refresh_owner": None, "refresh_until": None}
        if error is not None:
            values["last_error"] = error[:300]
        async with self.database.transaction() as conn:
            await conn.execute(
                connections.update().where(c.id == ident, c.refresh_owner == owner).values(values)
            )

    async def commit(
        self, ident: str, expected_version: int, material: Material, *, expires_at: float | None
    ) -> int | None:
        """Store new material if the version is still ``expected_version``; the new version, or None."""
        c = connections.c
        async with self.database.transaction() as conn:
            result = await conn.execute(
                connections.update()
                .where(c.id == ident, c.token_version == expected_version)
                .values(
                    token_version=expected_version + 1,
                    expires_at=expires_at,
                    state="active",
                    refresh_owner=None,
                    refresh_until=None,
                    last_error=None,
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
            if result.rowcount != 1:
                return None  # a newer token is stored: this writer is stale, and changes nothing
            await self.vault.write(conn, _vault_name(ident), material.seal_text())
        return expected_version + 1

    async def set_state(
        self, ident: str, state: State, *, error: str | None = None, expected_version: int | None = None
    ) -> bool:
        c = connections.c
        query = connections.update().where(c.id == ident)
        if expected_version is not None:
            query = query.where(c.token_version == expected_version)
        async with self.database.transaction() as conn:
            result = await conn.execute(
                query.values(
                    state=state,
                    last_error=error[:300] if error else None,
                    refresh_owner=None,
                    refresh_until=None,
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
        return bool(result.rowcount == 1)

    async def remove(self, ident: str) -> bool:
        async with self.database.transaction() as conn:
            await self.vault.remove(conn, _vault_name(ident))
            result = await conn.execute(connections.delete().where(connections.c.id == ident))
        return bool(result.rowcount == 1)
