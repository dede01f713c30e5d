"""The admin UI's events page: the latest events of the log, filtered, escaped, the read audited."""

from __future__ import annotations

import re

import pytest

from tests.surfaces.admin._kit import HOSTILE, make_hub, served, sign_in
from toolbridge.events import EventLog, EventService, NewEvent

pytestmark = pytest.mark.anyio


async def test_the_latest_events_newest_first_filtered_and_escaped() -> None:
    hub = make_hub()
    hub.event_service = EventService(EventLog(hub.database))
    async with served(hub) as admin:
        log = hub.event_service.log
        await log.append(NewEvent("github", "push", "repo/a", {"note": HOSTILE}))
        await log.append(NewEvent("stripe", "charge.created", None, {"amount": 5}))
        await sign_in(admin.http, admin.operator_key)
        page = await admin.http.get("/admin/events")
        assert page.status_code == 200
        assert re.findall(r"<td>(github|stripe)</td>", page.text) == ["stripe", "github"]
        assert HOSTILE not in page.text and "&lt;script&gt;" in page.text
        only = await admin.http.get("/admin/events", params={"source": "git*"})
        assert re.findall(r"<td>(github|stripe)</td>", only.text) == ["github"]
        await hub.audit.flush()
        reads = [r.entry for r in await hub.audit.tail(20) if r.entry.tool == "(events.tail)"]
        assert [(r.principal, r.outcome) for r in reads] == [("agent:ops", "ok")] * 2


async def test_a_server_without_events_says_so() -> None:
    async with served() as admin:
        await sign_in(admin.http, admin.operator_key)
        page = await admin.http.get("/admin/events")
        assert page.status_code == 200 and "records no events" in page.text
