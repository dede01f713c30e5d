"""Subscriptions as MCP resources: listed to the agents they name, read with a cursor, and told to
subscribed clients of both eras (official Python SDK client) when a matching webhook arrives.

The whole app (MCP at /mcp, hooks at /hooks) is served by uvicorn on 127.0.0.1 in this event loop.
Negative checks need no waiting: the notifier delivers in order, so once a later matching event reached
a client, an earlier one meant for it would have too.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated

from tests._patience import patience
from toolbridge.events import EventLog, NewEvent
from toolbridge.surfaces.app import create_app

from .conftest import Env
from .test_hooks import PUSH, github

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]
WAIT = patience(30.0)
URI = "toolbridge://events/pushes"


@dataclass
class Inbox:
    messages: list[Any] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        self.messages.append(message)
        self.arrived.set()
        self.arrived = anyio.Event()

    def updates(self) -> list[str]:
        return [str(m.params.uri) for m in self.messages if isinstance(m, types.ResourceUpdatedNotification)]

    async def wait_updates(self, count: int) -> list[str]:
        with anyio.fail_after(WAIT):
            while len(self.updates()) < count:
                await self.arrived.wait()
        return self.updates()


@dataclass
class Served:
    env: Env
    base: str
    keys: dict[str, str]

    async def post(self, body: bytes, headers: dict[str, str]) -> None:
        async with httpx2.AsyncClient(trust_env=False) as http:
            answer = await http.post(f"{self.base}/hooks/github", content=body, headers=headers)
        assert answer.status_code == 200, answer.text


@asynccontextmanager
async def serving(env: Env) -> AsyncIterator[Served]:
    keys = {
        "watcher": await env.hub.agents.create("watcher", ["events.*"]),
        "stranger": await env.hub.agents.create("stranger", ["events.*"]),
    }
    app = create_app(env.hub, manage_hub=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(WAIT):
                while not server.started:  # noqa: ASYNC110  # uvicorn offers no event: bounded polling
                    await anyio.sleep(0.01)
            try:
                yield Served(env, f"http://127.0.0.1:{sock.getsockname()[1]}", keys)
            finally:
                server.should_exit = True


@asynccontextmanager
async def connect(served: Served, agent: str, inbox: Inbox, mode: str = "legacy") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {served.keys[agent]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=patience(60), trust_env=False) as http,
        Client(
            streamable_http_client(f"{served.base}/mcp", http_client=http),
            mode=mode,  # type: ignore[arg-type]
            message_handler=inbox.handle,
        ) as client,
    ):
        yield client


async def read(client: Client, uri: str) -> dict[str, Any]:
    result = await client.read_resource(uri)
    (content,) = result.contents
    assert isinstance(content, types.TextResourceContents)
    return json.loads(content.text)  # type: ignore[no-any-return]


async def test_an_agent_lists_the_resources_of_the_subscriptions_that_name_it(env: Env) -> None:
    async with (
        serving(env) as served,
        connect(served, "watcher", Inbox()) as watcher,
        connect(served, "stranger", Inbox()) as stranger,
    ):
        assert [str(r.uri) for r in (await watcher.list_resources()).resources] == [URI]
        assert (await stranger.list_resources()).resources == []
        templates = (await watcher.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["toolbridge://events/{subscription}{?after,limit}"]


async def test_a_matching_webhook_is_told_to_subscribers_of_both_eras_and_read_after_the_cursor(
    env: Env,
) -> None:
    legacy, modern = Inbox(), Inbox()
    async with (
        serving(env) as served,
        connect(served, "watcher", legacy) as w,
        connect(served, "watcher", modern, mode="2026-07-28") as m,
    ):
        start = await read(w, URI)
        assert start["events"] == []
        await w.subscribe_resource(URI)
        async with m.listen(resource_subscriptions=[URI]) as subscription:
            await served.post(PUSH, github(PUSH, "d-issue", event="issues"))  # matches no subscription
            await served.post(PUSH, github(PUSH, "d-push", event="push"))
            assert await legacy.wait_updates(1) == [URI]
            with anyio.fail_after(WAIT):
                assert await subscription.__anext__() == ResourceUpdated(URI)
            page = await read(m, f"{URI}?after={start['cursor']}")
            assert [e["type"] for e in page["events"]] == ["push"]
            assert (await read(w, f"{URI}?after={page['cursor']}"))["events"] == []
        assert legacy.updates() == [URI]  # the issues event was told to nobody
        await w.unsubscribe_resource(URI)
    await env.hub.audit.flush()
    polls = await env.hub.audit.tail(10, tool="events.poll")
    assert len(polls) == 3  # each read is events.poll as the agent, audited


async def test_an_agent_the_subscription_does_not_name_can_neither_subscribe_nor_read(env: Env) -> None:
    async with serving(env) as served, connect(served, "stranger", Inbox()) as stranger:
        with pytest.raises(Exception, match="no resource 'toolbridge://events/pushes'") as caught:
            await stranger.subscribe_resource(URI)
        assert caught.value.error.code == -32002  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="no resource") as caught:
            await stranger.read_resource(URI)
        assert caught.value.error.code == -32002  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="after in .* must be a whole number"):
            await stranger.read_resource(f"{URI}?after=soon")


async def test_a_listen_stream_for_another_agents_subscription_is_refused(env: Env) -> None:
    async with (
        serving(env) as served,
        connect(served, "stranger", Inbox(), mode="2026-07-28") as stranger,
    ):
        with pytest.raises(Exception, match="no resource"):
            async with stranger.listen(resource_subscriptions=[URI]) as subscription:
                await subscription.__anext__()


async def test_an_event_another_process_recorded_is_told_too(env: Env) -> None:
    other = EventLog(env.hub.database)  # another replica or worker: same database, none of our listeners
    inbox = Inbox()
    async with serving(env) as served, connect(served, "watcher", inbox) as w:
        start = await read(w, URI)
        await w.subscribe_resource(URI)
        await other.append(NewEvent("github", "push", "octo/elsewhere", {"n": 1}))
        assert await inbox.wait_updates(1) == [URI]
        page = await read(w, f"{URI}?after={start['cursor']}")
        assert [e["subject"] for e in page["events"]] == ["octo/elsewhere"]
