"""Agents read their subscriptions through the Hub (events.poll / events.wait), scoped to principals."""

from __future__ import annotations

import anyio
import pytest

from tests._patience import patience
from toolbridge import Principal
from toolbridge.errors import InvalidArguments, NotFound

from .conftest import Env
from .test_hooks import PUSH, github

pytestmark = pytest.mark.anyio


async def test_poll_returns_matching_events_after_the_cursor(env: Env) -> None:
    watcher = Principal.agent("watcher", ["events.*"])
    start = await env.hub.call(watcher, "events.poll", {"subscription": "pushes"})
    assert start.value["events"] == []
    await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, "d-1", event="issues"))
    await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, "d-2", event="push"))
    page = await env.hub.call(
        watcher, "events.poll", {"subscription": "pushes", "cursor": start.value["cursor"]}
    )
    assert [e["type"] for e in page.value["events"]] == ["push"]
    again = await env.hub.call(
        watcher, "events.poll", {"subscription": "pushes", "cursor": page.value["cursor"]}
    )
    assert again.value["events"] == []
    await env.hub.audit.flush()
    rows = await env.hub.audit.tail(10, tool="events.poll")
    assert len(rows) == 3  # every read is a call through the Hub, audited


async def test_a_cursor_past_the_newest_event_is_refused_saying_which_to_pass(env: Env) -> None:
    """One from another list (a workspace feed's 5000) was answered as it stood: no events and the same
    cursor, on every later read, and the events below it were never seen."""
    watcher = Principal.agent("watcher", ["events.*"])
    await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, "d-9", event="push"))
    first = await env.hub.call(watcher, "events.poll", {"subscription": "pushes", "cursor": 0})
    newest = first.value["cursor"]
    for tool in ("events.poll", "events.wait"):
        with pytest.raises(InvalidArguments) as info:
            await env.hub.call(watcher, tool, {"subscription": "pushes", "cursor": newest + 5000})
        assert info.value.message == (
            f"cursor {newest + 5000} is past the newest event ({newest}): not a cursor this subscription gave"
        )
        assert info.value.hint is not None and "0 reads from the first entry kept" in info.value.hint
    same = await env.hub.call(watcher, "events.poll", {"subscription": "pushes", "cursor": newest})
    assert same.value == {"events": [], "cursor": newest}


async def test_other_agents_cannot_read_a_subscription(env: Env) -> None:
    stranger = Principal.agent("stranger", ["events.*"])
    with pytest.raises(NotFound, match="no subscription 'pushes' of yours"):
        await env.hub.call(stranger, "events.poll", {"subscription": "pushes"})
    with pytest.raises(NotFound, match="no subscription 'nope' of yours"):
        await env.hub.call(stranger, "events.poll", {"subscription": "nope"})
    listed = await env.hub.call(stranger, "events.subscriptions", {})
    assert listed.value["subscriptions"] == []


async def test_wait_wakes_when_a_matching_delivery_arrives(env: Env) -> None:
    watcher = Principal.agent("watcher", ["events.*"])
    start = await env.hub.call(watcher, "events.poll", {"subscription": "pushes"})
    got: list[object] = []

    async def waiter() -> None:
        args = {"subscription": "pushes", "cursor": start.value["cursor"], "max_wait": 50}
        got.append((await env.hub.call(watcher, "events.wait", args)).value)

    with anyio.fail_after(patience(30)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, "d-3"))
    assert [e["subject"] for e in got[0]["events"]] == ["octo/hello"]  # type: ignore[index]
