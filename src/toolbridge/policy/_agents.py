"""Agents and their API keys, kept in the database.

Keys are shown once at creation and stored as SHA-256 digests. Successful look-ups are cached for a few
seconds (``cache_ttl``) so a call does not cost a query; revoking through this store clears the cache at
once, and other replicas see a revocation within ``cache_ttl``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from toolbridge._clock import now
from toolbridge._suggest import close_matches
from toolbridge.errors import AuthenticationError, ConfigurationError, did_you_mean
from toolbridge.policy._keys import generate_key, hash_key, key_prefix, keys_equal
from toolbridge.policy._principal import Principal, Scope
from toolbridge.storage import Database, agents, api_keys

__all__ = ["AgentInfo", "AgentStore"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class AgentInfo:
    name: str
    scopes: tuple[str, ...]
    source: str
    created_at: dt.datetime
    active_keys: int


class AgentStore:
    def __init__(self, database: Database, *, cache_ttl: float = 5.0) -> None:
        self._db = database
        self._ttl = cache_ttl
        self._cache: dict[str, tuple[float, str, Principal]] = {}
        self._config_agents: set[str] = set()

    async def sync_config(self, declared: Mapping[str, Sequence[str]]) -> None:
        """Make the database agree with the agents declared in toolbridge.yaml (their scopes win)."""
        now = dt.datetime.now(dt.UTC)
        async with self._db.transaction() as conn:
            existing = {r.name: r for r in (await conn.execute(sa.select(agents))).all()}
            for name, scopes in declared.items():
                values = {"scopes": list(scopes), "source": "config"}
                if name in existing:
                    await conn.execute(agents.update().where(agents.c.name == name).values(**values))
                else:
                    await conn.execute(agents.insert().values(name=name, created_at=now, **values))
        self._config_agents = set(declared)
        self._cache.clear()

    async def create(self, name: str, scopes: Iterable[str] = ()) -> str:
        """Create the agent if needed and issue a new key for it; return the plaintext key (shown once).

        For an agent that exists (declared in config or created before) ``scopes`` must be empty: its
        scopes are kept and a further key is issued.
        """
        _check_name(name)
        scope_list = [str(Scope.parse(s)) for s in scopes]
        key_id, key = generate_key()
        now = dt.datetime.now(dt.UTC)
        async with self._db.transaction() as conn:
            row = (await conn.execute(sa.select(agents.c.name).where(agents.c.name == name))).first()
            if row is None:
                if not scope_list:
                    raise ConfigurationError(
                        f"agent {name!r} does not exist and no scope was given",
                        hint=(
                            f"declare it under 'agents:' in toolbridge.yaml ({name}: {{scopes: ['*:read']}}) "
                            f"or create it with scopes: toolbridge agents create {name} --scope 'notes.*'"
                        ),
                    )
                await conn.execute(
                    agents.insert().values(name=name, scopes=scope_list, source="cli", created_at=now)
                )
            elif scope_list:
                await conn.execute(agents.update().where(agents.c.name == name).values(scopes=scope_list))
            await conn.execute(
                api_keys.insert().values(id=key_id, agent_name=name, key_hash=hash_key(key), created_at=now)
            )
        return key

    async def list(self) -> list[AgentInfo]:
        active = sa.func.count(api_keys.c.id).filter(api_keys.c.revoked_at.is_(None))
        query = (
            sa.select(agents, active.label("active_keys"))
            .select_from(agents.outerjoin(api_keys, api_keys.c.agent_name == agents.c.name))
            .group_by(agents.c.name)
            .order_by(agents.c.name)
        )
        async with self._db.transaction() as conn:
            rows = (await conn.execute(query)).all()
        return [AgentInfo(r.name, tuple(r.scopes), r.source, r.created_at, int(r.active_keys)) for r in rows]

    async def revoke(self, name: str) -> int:
        """Revoke every key of agent ``name``; return how many were active."""
        now = dt.datetime.now(dt.UTC)
        async with self._db.transaction() as conn:
            names = [r.name for r in (await conn.execute(sa.select(agents.c.name))).all()]
            if name not in names:
                listing = (
                    f"agents here: {', '.join(sorted(names)[:20])}"
                    if names
                    else "this database has no agents: is it the one the server uses (--config, --database)?"
                )
                guess = did_you_mean(close_matches(name, names))
                raise ConfigurationError(
                    f"no agent named {name!r}", hint="; ".join(h for h in (guess, listing) if h)
                )
            result = await conn.execute(
                api_keys.update()
                .where(api_keys.c.agent_name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        self._cache.clear()
        return int(result.rowcount)

    async def principal_for(self, principal_id: str) -> Principal:
        """The principal an id (``agent:NAME`` / ``local:NAME``) names today, for work done for it later.

        An agent that was removed or whose keys were all revoked is refused: revoking stops its queued work.
        """
        kind, _, name = principal_id.partition(":")
        if kind == "local":
            return Principal.local(name)
        active = (  # a subquery, not GROUP BY: PostgreSQL cannot group by a json column (scopes)
            sa.select(sa.func.count(api_keys.c.id))
            .where(api_keys.c.agent_name == agents.c.name, api_keys.c.revoked_at.is_(None))
            .scalar_subquery()
        )
        query = sa.select(agents.c.scopes, active.label("active")).where(agents.c.name == name)
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).first()
        if kind != "agent" or row is None or (row.active == 0 and name not in self._config_agents):
            raise AuthenticationError(
                f"{principal_id} no longer exists or was revoked",
                hint="an operator must create the agent again",
            )
        return Principal.agent(name, row.scopes)

    async def holder(self, principal_id: str, key_id: str | None) -> Principal:
        """The principal a capability (signed URL, tus upload) was issued to, as it stands now.

        A capability issued under an API key dies with that key: a revoked key, or an agent that was
        removed, raises 401 at once (no cache). Without a key id (in-process callers) it is
        :meth:`principal_for`.
        """
        kind, _, name = principal_id.partition(":")
        if kind != "agent" or not key_id:
            return await self.principal_for(principal_id)
        query = (
            sa.select(api_keys.c.revoked_at, agents.c.scopes)
            .select_from(api_keys.join(agents, agents.c.name == api_keys.c.agent_name))
            .where(api_keys.c.id == key_id, api_keys.c.agent_name == name)
        )
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.revoked_at is not None:
            raise AuthenticationError(
                f"the key this URL was issued under for {principal_id} was revoked",
                hint="authenticate with a valid key and ask for a new URL",
            )
        return Principal.agent(name, row.scopes, key_id=key_id)

    async def authenticate(self, key: str | None) -> Principal:
        """The principal owning ``key``; a missing, malformed, unknown or revoked key raises 401."""
        if not key:
            raise AuthenticationError(
                "no API key was sent: toolbridge reads 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                hint="send the key in one of those headers (another scheme, such as Basic, is not read); "
                "create a key with 'toolbridge agents create NAME'",
            )
        key_id = key_prefix(key)
        if key_id is None:
            raise _bad_key()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now() and keys_equal(cached[1], key):
            return cached[2]
        principal, digest = await self._lookup(key_id, key)
        self._cache[key_id] = (now() + self._ttl, digest, principal)
        return principal

    async def _lookup(self, key_id: str, key: str) -> tuple[Principal, str]:
        query = (
            sa.select(api_keys.c.key_hash, api_keys.c.revoked_at, agents.c.name, agents.c.scopes)
            .select_from(api_keys.join(agents, agents.c.name == api_keys.c.agent_name))
            .where(api_keys.c.id == key_id)
        )
        async with self._db.transaction() as conn:
            row = (await conn.execute(query)).first()
        if row is None or row.revoked_at is not None or not keys_equal(row.key_hash, key):
            raise _bad_key()
        return Principal.agent(row.name, row.scopes, key_id=key_id), row.key_hash


def _bad_key() -> AuthenticationError:
    return AuthenticationError(
        "the API key is not valid (unknown or revoked)",
        hint="check the key, or ask an operator for a new one ('toolbridge agents create NAME')",
    )


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"agent name {name!r} is not valid",
            hint="use 1-64 lower-case letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
