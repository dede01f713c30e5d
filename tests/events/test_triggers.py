"""Poll triggers: one event per new or changed item, none on an unchanged poll, none repeated after a
restart; one runner polls a trigger at a time; cron schedules."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from toolbridge import Hub
from toolbridge.errors import ConfigFileError
from toolbridge.events import EventLog, EventService
from toolbridge.events._triggers import Trigger, TriggerRunner
from toolbridge.settings import parse_settings

from .conftest import Clock

pytestmark = pytest.mark.anyio


@dataclass
class Env:
    hub: Hub
    service: EventService
    clock: Clock
    leads: list[dict[str, object]]

    def runner(self, trigger: Trigger) -> TriggerRunner:
        return TriggerRunner(self.hub, self.service, {trigger.name: trigger}, clock=self.clock)

    async def events(self) -> list[tuple[str, str | None]]:
        return [(e.type, e.subject) for e in await self.service.log.tail(100)]


LEADS = Trigger("leads", "crm.list_leads", "poller", every=60, items="data", fields=("stage",))


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[Env]:
    hub = Hub(database=database_url)
    leads: list[dict[str, object]] = [{"id": 1, "stage": "new", "seen": 0}]

    @hub.tool(connector="crm", read_only=True)
    def list_leads() -> dict[str, object]:
        """The leads."""
        for lead in leads:
            lead["seen"] = int(str(lead["seen"])) + 1  # a field the trigger does not compare
        return {"data": [dict(lead) for lead in leads]}

    @hub.tool(connector="crm")
    def purge() -> list[object]:
        """Not read-only."""
        return []

    clock = Clock()
    service = EventService(EventLog(hub.database, clock=clock))
    async with hub:
        await hub.agents.create("poller", ["crm.*"])
        yield Env(hub, service, clock, leads)


async def test_new_and_changed_items_become_events_and_unchanged_polls_none(env: Env) -> None:
    runner = env.runner(LEADS)
    assert await runner.run_once() == 0  # the first poll records a baseline
    env.leads.append({"id": 2, "stage": "new", "seen": 0})
    assert await runner.run_once() == 0  # not due yet
    env.clock.now += 61
    assert await runner.run_once() == 1
    env.clock.now += 61
    assert await runner.run_once() == 0  # unchanged (only 'seen' moved, which is not compared)
    env.leads[0]["stage"] = "won"
    env.clock.now += 61
    assert await runner.run_once() == 1
    assert await env.events() == [("leads.new", "2"), ("leads.changed", "1")]


async def test_state_survives_a_restart(env: Env) -> None:
    await env.runner(LEADS).run_once()
    env.clock.now += 61
    assert await env.runner(LEADS).run_once() == 0  # a new runner (a restarted process) reads the state
    env.leads.append({"id": 3, "stage": "new", "seen": 0})
    env.clock.now += 61
    assert await env.runner(LEADS).run_once() == 1
    assert await env.events() == [("leads.new", "3")]


async def test_initial_emit_and_one_runner_at_a_time(env: Env) -> None:
    trigger = Trigger(
        "all", "crm.list_leads", "poller", every=60, items="data", fields=("stage",), initial="emit"
    )
    first, second = env.runner(trigger), env.runner(trigger)
    token, _ = await first._claim(trigger)
    assert token is not None
    assert await second.run_once() == 0  # leased by the first runner
    assert await env.events() == []
    env.clock.now += 301  # the first runner died: its lease ends
    assert await second.run_once() == 1
    assert await env.events() == [("all.new", "1")]
    await first._save(trigger, token, {})  # the first runner wakes up late: its lease no longer holds
    env.clock.now += 61
    assert await second.run_once() == 0  # the state the second runner saved is intact: nothing is new


async def test_a_write_tool_is_never_polled(env: Env) -> None:
    trigger = Trigger("bad", "crm.purge", "poller", every=60, initial="emit")
    assert await env.runner(trigger).run_once() == 0
    await env.hub.audit.flush()
    assert await env.hub.audit.tail(10, tool="crm.purge") == []


def test_cron_schedules_and_settings() -> None:
    trigger = Trigger("c", "crm.list_leads", "poller", cron="*/5 * * * *")
    start = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
    assert trigger.next_run(start) == dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
    loaded = parse_settings("triggers:\n  t: {tool: a.b, principal: p, cron: '0 * * * *'}\n")
    assert loaded.triggers["t"].cron == "0 * * * *"
    for bad in ("{tool: a.b, principal: p}", "{tool: a.b, principal: p, cron: 'every day'}"):
        with pytest.raises(ConfigFileError, match="cron|every"):
            parse_settings(f"triggers:\n  t: {bad}\n")
