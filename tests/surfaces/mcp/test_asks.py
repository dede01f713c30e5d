"""An upstream's requests to its client (handshake era) reach the agent whose call they belong to.

toolbridge (uvicorn on 127.0.0.1) federates fidelity_server.py in the 2025-11-25 era, over stdio and
over streamable HTTP; its ``ask_mid_call`` tool asks its client for its roots, a sample and a name with
server requests while the call runs, and answers with what it got. The agent is the official Python
client: in the 2025-11-25 era with callbacks (its answers must reach the upstream unchanged), without
them (the upstream hears which capability is missing), and in the 2026-07-28 era (where a server cannot
ask mid-call: the upstream hears that).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests._patience import patience
from tests.connectors.mcp.conftest import python_http
from toolbridge import Hub, Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer

from .test_cancellation import toolbridge

pytestmark = pytest.mark.anyio
SERVER = Path(__file__).with_name("fidelity_server.py")
UPSTREAMS = ["stdio", "http"]


async def roots(_ctx: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/agent", name="agent")])


async def sample(_ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    assert params.max_tokens == 9
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="hi there"), model="agent-model"
    )


async def elicit(_ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert params.message == "Name?"
    return types.ElicitResult(action="accept", content={"name": "Ada"})


CALLBACKS = {"list_roots_callback": roots, "sampling_callback": sample, "elicitation_callback": elicit}


@asynccontextmanager
async def upstream(kind: str) -> AsyncIterator[HttpServer | StdioServer]:
    if kind == "stdio":
        yield StdioServer(sys.executable, (str(SERVER),), protocol="2025-11-25")
        return
    with python_http(SERVER) as url:
        yield HttpServer(url, protocol="2025-11-25")


async def ask_mid_call(kind: str, mode: str, *, listed: bool = False, **callbacks: Any) -> str:
    """The upstream's answer; ``listed``: the agent lists its tools first, so its call is not the session's
    first request (a later plain call takes the lean session path, the first goes through the SDK)."""
    async with (
        upstream(kind) as server,
        toolbridge(server) as (url, key),
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=patience(60)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **callbacks) as client,  # type: ignore[arg-type]
    ):
        if listed:
            await client.list_tools()
        result = await client.call_tool("fid.ask_mid_call", {})
    assert result.is_error is False, result
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("kind", UPSTREAMS)
async def test_a_handshake_era_agent_answers_what_the_upstream_asks_mid_call(kind: str, listed: bool) -> None:
    said = await ask_mid_call(kind, "legacy", listed=listed, **CALLBACKS)
    assert said.splitlines() == [
        "roots=file:///work/agent",
        "sample=hi there by agent-model",
        'elicited=accept:{"name": "Ada"}',
    ]


@pytest.mark.parametrize("listed", [False, True])
@pytest.mark.parametrize("kind", UPSTREAMS)
async def test_the_upstream_hears_which_capability_the_agent_lacks(kind: str, listed: bool) -> None:
    said = await ask_mid_call(kind, "legacy", listed=listed, sampling_callback=sample)
    roots_line, sample_line, elicit_line = said.splitlines()
    assert roots_line == "roots refused (-32601): toolbridge cannot put 'roots/list' to the agent: " + (
        "it did not declare the 'roots' capability"
    )
    assert sample_line == "sample=hi there by agent-model"
    assert "it did not declare the 'elicitation' capability" in elicit_line


async def test_a_stateless_era_agent_cannot_be_asked_mid_call_and_the_upstream_hears_why() -> None:
    said = await ask_mid_call("stdio", "2026-07-28", **CALLBACKS)
    for line in said.splitlines():
        assert "refused (-32601)" in line
        assert "only an MCP agent of the 2025-11-25 era can be asked mid-call" in line
        assert "nor a 2026-07-28 agent" in line


async def test_a_rest_or_python_caller_cannot_be_asked() -> None:
    hub = Hub()
    hub.add_connector(McpConnector("fid", StdioServer(sys.executable, (str(SERVER),), protocol="2025-11-25")))
    async with hub:
        result = await hub.call(Principal.local(), "fid.ask_mid_call", {})
    text = result.value["content"][0]["text"]
    assert "only an MCP agent of the 2025-11-25 era can be asked mid-call" in text
    assert len(text.splitlines()) == 3


# -- the reverse: a stateless-era upstream's input_required, put to a handshake-era agent -----------------


async def call_stateless(tool: str, **callbacks: Any) -> Any:
    async with (
        upstream("http") as handshake,
        toolbridge(HttpServer(handshake.url, protocol="2026-07-28")) as (url, key),  # type: ignore[union-attr]
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=patience(60)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", **callbacks) as client,  # type: ignore[arg-type]
    ):
        return await client.call_tool(f"fid.{tool}", {})


async def test_a_stateless_upstreams_input_requests_are_put_to_a_handshake_era_agent() -> None:
    result = await call_stateless("ask_name", elicitation_callback=elicit_name)
    assert result.is_error is False, result
    assert result.content[0].text == "Hello, Ada!"  # type: ignore[union-attr]
    every = await call_stateless("ask_everything", **CALLBACKS)
    assert every.content[0].text == "all answered"  # type: ignore[union-attr]


async def test_an_agent_that_cannot_answer_gets_input_required() -> None:
    result = await call_stateless("ask_name", sampling_callback=sample)
    assert result.is_error is True
    assert "asks the caller for input (elicitation/create)" in result.content[0].text  # type: ignore[union-attr]


async def elicit_name(_ctx: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert params.message == "What is your name?"
    return types.ElicitResult(action="accept", content={"name": "Ada"})


# -- a stateless-era upstream's log messages about a call reach that call's (handshake-era) agent ---------


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("level", ["info", "warning"])
async def test_a_stateless_upstreams_logs_about_a_call_reach_its_agent_at_the_level_it_asked(
    level: str, mode: str
) -> None:
    said: list[types.LoggingMessageNotificationParams] = []

    async def heard(params: types.LoggingMessageNotificationParams) -> None:
        said.append(params)

    opt_in = {"log_level": level} if mode != "legacy" else {}  # the 2026-07-28 per-request opt-in
    async with (
        upstream("http") as handshake,
        toolbridge(HttpServer(handshake.url, protocol="2026-07-28")) as (url, key),  # type: ignore[union-attr]
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=patience(60)) as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode=mode,  # type: ignore[arg-type]
            logging_callback=heard,
            **opt_in,  # type: ignore[arg-type]
        ) as client,
    ):
        if mode == "legacy":
            with pytest.warns(MCPDeprecationWarning, match="logging capability is deprecated"):
                await client.set_logging_level(level)  # type: ignore[arg-type]
        result = await client.call_tool("fid.chatty", {})
    assert result.content[0].text == "said"  # type: ignore[union-attr]
    expected = ["chatty at info", "chatty at warning"] if level == "info" else ["chatty at warning"]
    assert [(p.data, p.logger) for p in said] == [(text, "fid") for text in expected]


# -- resource subscriptions to a stateless-era upstream: its listen stream's resourceSubscriptions ---------


async def test_a_subscription_to_a_stateless_upstreams_resource_brings_its_updates() -> None:
    updated = anyio.Event()
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            heard.append(str(message.params.uri))
            updated.set()

    async with (
        upstream("http") as handshake,
        toolbridge(HttpServer(handshake.url, protocol="2026-07-28")) as (url, key),  # type: ignore[union-attr]
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=patience(60)) as http,
        Client(
            streamable_http_client(url, http_client=http), mode="legacy", message_handler=on_message
        ) as client,  # type: ignore[arg-type]
    ):
        with pytest.warns(MCPDeprecationWarning, match="resources/subscribe is removed"):
            await client.subscribe_resource("toolbridge://fid/demo://note")
        with anyio.fail_after(
            patience(20)
        ):  # the listen stream is opened again with the URI: touch until heard
            while not updated.is_set():
                await client.call_tool("fid.touch", {"uri": "demo://note"})
                with anyio.move_on_after(0.2):
                    await updated.wait()
        with pytest.warns(MCPDeprecationWarning, match="resources/unsubscribe is removed"):
            await client.unsubscribe_resource("toolbridge://fid/demo://note")
    assert set(heard) == {"toolbridge://fid/demo://note"}
