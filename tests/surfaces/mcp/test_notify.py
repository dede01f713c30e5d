"""Upstream events reach the MCP clients of the agents that can see them, and nobody else.

toolbridge (uvicorn on 127.0.0.1, in this event loop) federates two real upstreams over stdio: a small
official-SDK server whose tool list grows on request (``grow``) and that logs on request (``shout``), and
server-everything (resource subscriptions). Clients are the official Python client, in both eras.
Two agents: ``watcher`` sees the upstream's tools, ``outsider`` only a local Python tool.

Negative checks need no waiting: the notifier delivers events one at a time, to every client, in
order, so once a later *barrier* event reached a client, any earlier event meant for it has too.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ResourceUpdated, ToolsListChanged
from starlette.applications import Starlette

from tests._patience import patience
from tests.connectors.mcp.conftest import EVERYTHING, NODE, everything_stdio, free_port, require
from toolbridge import Hub, Principal
from toolbridge.connectors._events import ListChanged, LogMessage
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer
from toolbridge.surfaces.mcp import McpSurface

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    # logging/setLevel and resources/subscribe are handshake-era methods, deprecated by 2026-07-28
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]
GROWING = Path(__file__).with_name("growing_server.py")
WAIT = patience(
    30.0
)  # seconds a notification may take to arrive (a bound for a hung test, not a timing claim)


@dataclass
class Inbox:
    """What one client received, with a way to wait for something in particular."""

    messages: list[Any] = field(default_factory=list)
    arrived: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, message: Any) -> None:
        if isinstance(message, Exception):
            return
        self.messages.append(message)
        self.arrived.set()
        self.arrived = anyio.Event()

    async def wait_for(self, check: Any) -> Any:
        with anyio.fail_after(WAIT):
            while True:
                found = next((m for m in self.messages if check(m)), None)
                if found is not None:
                    return found
                await self.arrived.wait()

    def logs(self) -> list[types.LoggingMessageNotificationParams]:
        return [m.params for m in self.messages if isinstance(m, types.LoggingMessageNotification)]


def is_log(text: str) -> Any:
    return lambda m: isinstance(m, types.LoggingMessageNotification) and m.params.data == text


@dataclass
class Served:
    hub: Hub
    surface: McpSurface
    url: str
    keys: dict[str, str]


@asynccontextmanager
async def serving() -> AsyncIterator[Served]:
    require(NODE, EVERYTHING)
    hub = Hub()
    # Handshake era upstream: a stateless-era one tells list changes only on a listen stream
    growing = StdioServer(sys.executable, (str(GROWING),), protocol="2025-11-25")
    hub.add_connector(McpConnector("grow", growing))
    hub.add_connector(McpConnector("ev", everything_stdio()))

    @hub.tool(connector="local", read_only=True)
    def ping() -> str:
        """Answer pong."""
        return "pong"

    surface = McpSurface(hub)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        async with _running(hub, surface, sock) as served:
            yield served


@asynccontextmanager
async def _running(hub: Hub, surface: McpSurface, sock: socket.socket) -> AsyncIterator[Served]:
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=surface.routes()), log_level="warning"))
    async with hub, surface, anyio.create_task_group() as tg:
        keys = {
            "watcher": await hub.agents.create("watcher", ["grow.*", "ev.*"]),
            "outsider": await hub.agents.create("outsider", ["local.*"]),
        }
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(WAIT):
            while not server.started:  # noqa: ASYNC110  # uvicorn offers no event: bounded polling
                await anyio.sleep(0.01)
        try:
            yield Served(hub, surface, url, keys)
        finally:
            server.should_exit = True


@asynccontextmanager
async def connect(served: Served, agent: str, inbox: Inbox, mode: str = "legacy") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {served.keys[agent]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=patience(60)) as http,
        Client(
            streamable_http_client(served.url, http_client=http),
            mode=mode,  # type: ignore[arg-type]
            message_handler=inbox.handle,
        ) as client,
    ):
        yield client


async def barrier(served: Served, connector: str, inbox: Inbox) -> None:
    """An event on ``connector`` that ``inbox``'s agent sees; returns once it arrived."""
    text = f"barrier {connector} {len(inbox.messages)}"
    served.hub.events.emit(LogMessage(connector, "emergency", text))
    await inbox.wait_for(is_log(text))


async def test_upstream_log_messages_reach_the_agents_that_see_the_connector_at_their_level() -> None:
    watcher, outsider = Inbox(), Inbox()
    async with (
        serving() as served,
        connect(served, "watcher", watcher) as w,
        connect(served, "outsider", outsider) as o,
    ):
        assert w.server_capabilities.logging is not None
        await w.set_logging_level("info")
        await o.set_logging_level("debug")
        assert (await w.call_tool("grow.shout", {"text": "quiet", "level": "debug"})).content
        assert (await w.call_tool("grow.shout", {"text": "loud", "level": "error"})).content
        loud = await watcher.wait_for(is_log("loud"))
        assert (loud.params.level, loud.params.logger) == ("error", "grow")
        await barrier(served, "local", outsider)
        await barrier(served, "grow", watcher)

    assert "quiet" not in [p.data for p in watcher.logs()]  # below the level the watcher set
    assert all(str(p.data).startswith("barrier local") for p in outsider.logs()), outsider.logs()
    assert not [p for p in watcher.logs() if str(p.data).startswith("barrier local")]


async def test_a_growing_upstream_tool_list_is_told_to_watchers_in_both_eras_and_to_no_one_else() -> None:
    legacy, modern, outsider = Inbox(), Inbox(), Inbox()
    async with (
        serving() as served,
        connect(served, "watcher", legacy) as w,
        connect(served, "watcher", modern, mode="2026-07-28") as m,
        connect(served, "outsider", outsider) as o,
        m.listen(tools_list_changed=True) as subscription,
    ):
        await o.list_tools()
        assert "grow.blossom" not in {t.name for t in (await w.list_tools()).tools}
        await w.call_tool("grow.grow", {"name": "blossom"})
        await legacy.wait_for(lambda n: isinstance(n, types.ToolListChangedNotification))
        with anyio.fail_after(WAIT):
            event = await subscription.__anext__()
        assert isinstance(event, ToolsListChanged)
        assert "grow.blossom" in {t.name for t in (await m.list_tools()).tools}
        assert (await w.call_tool("grow.blossom", {})).content[0].text == "I am blossom"  # type: ignore[union-attr]
        await barrier(served, "local", outsider)

    assert not [n for n in outsider.messages if isinstance(n, types.ToolListChangedNotification)]


async def test_a_tool_change_the_agent_cannot_see_is_not_told_to_it() -> None:
    watcher = Inbox()
    async with serving() as served, connect(served, "watcher", watcher) as w:
        await w.list_tools()
        served.hub.events.emit(ListChanged("local", "tools"))  # the outsider's connector: no change for us
        await barrier(served, "grow", watcher)
    assert not [n for n in watcher.messages if isinstance(n, types.ToolListChangedNotification)]


async def test_resource_subscriptions_are_forwarded_upstream_and_updates_come_back() -> None:
    legacy, modern = Inbox(), Inbox()
    async with (
        serving() as served,
        connect(served, "watcher", legacy) as w,
        connect(served, "watcher", modern, mode="2026-07-28") as m,
    ):
        resources = (await w.list_resources()).resources
        uri = str(resources[0].uri)
        await w.subscribe_resource(uri)
        async with m.listen(resource_subscriptions=[uri]) as subscription:
            await w.call_tool("ev.toggle-subscriber-updates", {})  # the upstream sends one update at once
            update = await legacy.wait_for(lambda n: isinstance(n, types.ResourceUpdatedNotification))
            assert str(update.params.uri) == uri
            with anyio.fail_after(WAIT):
                event = await subscription.__anext__()
            assert event == ResourceUpdated(uri)
            await w.call_tool("ev.toggle-subscriber-updates", {})
        await w.unsubscribe_resource(uri)


async def test_subscribing_to_an_unknown_resource_is_refused_with_resource_not_found() -> None:
    inbox = Inbox()
    async with serving() as served, connect(served, "outsider", inbox) as o:
        with pytest.raises(Exception, match="no resource 'demo://nowhere'") as caught:
            await o.subscribe_resource("demo://nowhere")
    assert getattr(caught.value, "error", None) is None or caught.value.error.code == -32002  # type: ignore[attr-defined]


async def test_progress_of_an_upstream_call_streams_to_a_stateless_era_client_over_http() -> None:
    inbox = Inbox()
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    async with serving() as served, connect(served, "watcher", inbox, mode="2026-07-28") as m:
        result = await m.call_tool(
            "ev.trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=progress
        )
    assert "completed" in result.content[0].text  # type: ignore[union-attr]
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_a_stateless_era_upstream_tells_its_list_changes_on_a_listen_stream() -> None:
    hub = Hub()
    connector = McpConnector("grow", StdioServer(sys.executable, (str(GROWING),)))
    hub.add_connector(connector)
    changed = anyio.Event()
    async with hub:
        assert connector.connected
        hub.events.subscribe(lambda event: changed.set() if event == ListChanged("grow", "tools") else None)
        await hub.call(Principal.local(), "grow.grow", {"name": "sprout"})
        with anyio.fail_after(WAIT):
            await changed.wait()
        assert "grow.sprout" in {t.name for t in hub.list_tools(Principal.local())}
        result = await hub.call(Principal.local(), "grow.sprout", {})
        assert result.value["content"][0]["text"] == "I am sprout"


async def test_prompt_and_resource_reads_are_audited_as_the_agent_without_their_arguments() -> None:
    inbox = Inbox()
    async with serving() as served, connect(served, "watcher", inbox) as w:
        uri = str((await w.list_resources()).resources[0].uri)
        await w.read_resource(uri)
        prompt = next(
            p for p in (await w.list_prompts()).prompts if not any(a.required for a in p.arguments or [])
        )
        await w.get_prompt(prompt.name)
        await served.hub.audit.flush()
        records = await served.hub.audit.tail(5)
        assert (await served.hub.audit.verify()).ok
    rows = {r.entry.tool: r.entry for r in records}
    read, got = rows["resources/read ev"], rows[f"prompts/get {prompt.name}"]
    assert (read.principal, read.outcome, got.outcome) == ("agent:watcher", "ok", "ok")
    assert uri not in str([r.as_dict() for r in records])  # digested, never stored


@asynccontextmanager
async def growing_over_http() -> AsyncIterator[str]:
    """The growing server on streamable HTTP (where ``Mcp-Param-*`` headers exist); yields its URL."""
    port = free_port()
    async with await anyio.open_process([sys.executable, str(GROWING), "http", str(port)]) as process:
        try:
            with anyio.fail_after(WAIT):
                while True:  # bounded polling until it listens
                    try:
                        await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                        break
                    except OSError:
                        await anyio.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()


async def test_arguments_annotated_x_mcp_header_travel_as_mcp_param_headers_to_a_stateless_upstream() -> None:
    async with growing_over_http() as url:
        hub = Hub()
        connector = McpConnector("grow", HttpServer(url))
        hub.add_connector(connector)
        async with hub:
            assert connector.connected
            result = await hub.call(Principal.local(), "grow.where", {"region": "eu-west"})
    assert result.value["content"][0]["text"] == "routed to eu-west"


async def test_progress_reaches_a_handshake_era_http_client_on_its_session_stream() -> None:
    inbox = Inbox()
    seen: list[tuple[float, float | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total))

    async with serving() as served, connect(served, "watcher", inbox) as w:
        result = await w.call_tool(
            "ev.trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=progress
        )
        with anyio.fail_after(WAIT):  # the GET stream is another connection than the answer's
            while len(seen) < 2:  # noqa: ASYNC110  # the client offers no event for progress
                await anyio.sleep(0.01)
    assert "completed" in result.content[0].text  # type: ignore[union-attr]
    # the last report races the answer on another connection: the client may have closed the call first
    assert seen in ([(1, 3), (2, 3)], [(1, 3), (2, 3), (3, 3)])


async def test_completions_of_a_federated_prompt_and_template_come_from_its_upstream() -> None:
    inbox = Inbox()
    async with (
        serving() as served,
        connect(served, "watcher", inbox) as w,
        connect(served, "outsider", Inbox()) as o,
    ):
        assert w.server_capabilities.completions is not None
        prompt = types.PromptReference(type="ref/prompt", name="ev.completable-prompt")
        department = await w.complete(prompt, {"name": "department", "value": "S"})
        assert department.completion.values == ["Sales", "Support"]
        lead = await w.complete(prompt, {"name": "name", "value": ""}, {"department": "Sales"})
        assert lead.completion.values == ["David", "Eve", "Frank"]
        templates = (await w.list_resource_templates()).resource_templates
        template = types.ResourceTemplateReference(type="ref/resource", uri=templates[0].uri_template)
        assert (await w.complete(template, {"name": "resourceId", "value": "1"})).completion.values
        with pytest.raises(Exception, match="no prompt named 'ev.completable-prompt'"):
            await o.complete(prompt, {"name": "department", "value": "S"})  # the outsider cannot see ev
        await served.hub.audit.flush()
        rows = [r.entry for r in await served.hub.audit.tail(10) if r.entry.tool == "completion/complete ev"]
    assert len(rows) == 3 and {r.principal for r in rows} == {"agent:watcher"}
