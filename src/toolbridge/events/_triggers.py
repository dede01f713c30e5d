"""Poll triggers: for APIs without webhooks, call a read-only tool on a schedule and emit the differences.

Each poll compares the items of the result (found at ``items``, identified by ``key``) with the digests
stored after the last poll: a new key emits ``<type>.new``, a changed digest ``<type>.changed``; an
unchanged poll emits nothing. The stored digests are the trigger's state in the database, so a restart
neither forgets nor repeats; every event also carries ``<key>:<digest>`` as its delivery id, so a poll
repeated after a crash (events recorded, state not yet saved) is deduplicated by the log. A trigger's row
is leased while it polls: with several workers, one polls at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from croniter import croniter

from toolbridge.errors import ConfigurationError, ToolbridgeError
from toolbridge.events._model import NewEvent
from toolbridge.events._tables import event_triggers
from toolbridge.events._verify import dig

if TYPE_CHECKING:
    from toolbridge.events._service import EventService
    from toolbridge.hub import Hub

__all__ = ["Trigger", "TriggerRunner"]

logger = logging.getLogger("toolbridge.events")


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    tool: str
    principal: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    every: float | None = None
    cron: str | None = None
    items: str | None = None
    key: str = "id"
    fields: tuple[str, ...] = ()
    type: str | None = None
    initial: str = "baseline"

    def next_run(self, after: dt.datetime) -> dt.datetime:
        if self.cron is not None:
            found: dt.datetime = croniter(self.cron, after).get_next(dt.datetime)
            return found
        return after + dt.timedelta(seconds=self.every or 60.0)

    def digest(self, item: Any) -> str:
        picked = {f: dig(item, f) for f in self.fields} if self.fields else item
        return hashlib.sha256(json.dumps(picked, sort_keys=True, default=str).encode()).hexdigest()[:32]


class TriggerRunner:
    def __init__(
        self,
        hub: Hub,
        service: EventService,
        triggers: Mapping[str, Trigger],
        *,
        lease: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hub = hub
        self._service = service
        self.triggers = dict(triggers)
        self._lease = dt.timedelta(seconds=lease)
        self.clock = clock

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    async def run_once(self) -> int:
        """Poll every due trigger this worker can lease; returns how many events were emitted."""
        emitted = 0
        for trigger in self.triggers.values():
            token, state = await self._claim(trigger)
            if token is not None:
                emitted += await self._poll(trigger, token, state)
        return emitted

    async def _claim(self, trigger: Trigger) -> tuple[str | None, dict[str, str] | None]:
        """The lease token and last state when this runner now holds the trigger, else (None, None)."""
        now, t, token = self.now(), event_triggers, secrets.token_hex(8)
        async with self._service.log.database.transaction() as conn:
            exists = (await conn.execute(sa.select(t.c.name).where(t.c.name == trigger.name))).first()
            if exists is None:
                await conn.execute(
                    t.insert().values(name=trigger.name, state=None, next_run=now, updated_at=now)
                )
            free = sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now)
            claim = (
                t.update()
                .where(t.c.name == trigger.name, t.c.next_run <= now, free)
                .values(lease_until=now + self._lease, lease_token=token, updated_at=now)
                .returning(t.c.state)
            )
            row = (await conn.execute(claim)).first()
        return (token, row.state) if row is not None else (None, None)

    async def _poll(self, trigger: Trigger, token: str, state: dict[str, str] | None) -> int:
        try:
            items = await self._items(trigger)
        except ToolbridgeError as exc:
            logger.warning("trigger %s: %s", trigger.name, exc)
            await self._save(trigger, token, state)
            return 0
        current = {str(dig(item, trigger.key)): (trigger.digest(item), item) for item in items}
        emit = state is not None or trigger.initial == "emit"
        emitted = 0
        for key, (digest, item) in current.items():
            before = (state or {}).get(key)
            if emit and before != digest:
                kind = f"{trigger.type or trigger.name}.{'new' if before is None else 'changed'}"
                source = f"trigger.{trigger.name}"[:64]
                await self._service.log.append(NewEvent(source, kind, key, item, f"{key}:{digest}"))
                emitted += 1
        await self._save(trigger, token, {k: d for k, (d, _) in current.items()})
        return emitted

    async def _items(self, trigger: Trigger) -> list[Any]:
        hub = self._hub
        tool = hub.catalog.get(trigger.tool)
        if not tool.annotations.read_only:
            raise ConfigurationError(
                f"trigger {trigger.name!r} calls {trigger.tool!r}, which is not read-only",
                hint="a poll trigger may only call read-only tools",
            )
        principal = await hub.agents.principal_for(f"agent:{trigger.principal}")
        result = await hub.call(principal, trigger.tool, dict(trigger.arguments))
        found = dig(result.value, trigger.items) if trigger.items else result.value
        if not isinstance(found, list):
            raise ConfigurationError(
                f"trigger {trigger.name!r}: the result of {trigger.tool!r} has no list at "
                f"{trigger.items or '(the top)'}",
                hint="set 'items' to the dotted path of the list in the tool's result",
            )
        return found

    async def _save(self, trigger: Trigger, token: str, state: dict[str, str] | None) -> None:
        """Store the new state, only while this runner's lease holds the trigger."""
        now, t = self.now(), event_triggers
        values = {"state": state, "next_run": trigger.next_run(now), "lease_until": None, "lease_token": None}
        async with self._service.log.database.transaction() as conn:
            result = await conn.execute(
                t.update()
                .where(t.c.name == trigger.name, t.c.lease_token == token)
                .values(updated_at=now, **values)
            )
        if result.rowcount != 1:
            logger.warning(
                "trigger %s: lease lost (another runner took it over); state not saved", trigger.name
            )
