"""The official MCP client (mcp SDK) against the surface, in-process over ASGI, in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from .conftest import BASE, Served

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28", "auto"]


@asynccontextmanager
async def connect(served: Served, agent: str, mode: str) -> AsyncIterator[Client]:
    transport = httpx2.ASGITransport(app=served.surface.asgi_app)
    headers = {"Authorization": f"Bearer {served.keys[agent]}"}
    async with (
        httpx2.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http,
        Client(streamable_http_client(f"{BASE}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", MODES)
async def test_client_sees_the_agents_view(served: Served, mode: str) -> None:
    async with connect(served, "reader", mode) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == ["demo.big", "demo.echo", "demo.fail"]
    echo = tools[1]
    assert echo.annotations is not None
    assert echo.annotations.read_only_hint is True
    assert echo.input_schema["required"] == ["text"]


@pytest.mark.parametrize("mode", MODES)
async def test_client_calls_a_tool(served: Served, mode: str) -> None:
    async with connect(served, "alice", mode) as client:
        result = await client.call_tool("demo.add", {"a": 20, "b": 22})
    assert result.is_error is False
    assert result.structured_content == {"sum": 42}
    assert result.content[0].text == '{"sum":42}'  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_client_sees_validation_errors_as_tool_errors(served: Served, mode: str) -> None:
    async with connect(served, "alice", mode) as client:
        result = await client.call_tool("demo.add", {"a": 1, "c": 2})
    assert result.is_error is True
    text = result.content[0].text  # type: ignore[union-attr]
    assert "unknown field 'c'" in text
    assert "hint:" in text


@pytest.mark.parametrize("mode", MODES)
async def test_client_gets_did_you_mean_for_an_unknown_tool(served: Served, mode: str) -> None:
    async with connect(served, "alice", mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("demo.adds", {"a": 1, "b": 2})
    assert caught.value.code == -32602
    assert "did you mean 'demo.add'?" in caught.value.message


async def test_client_learns_the_server(served: Served) -> None:
    async with connect(served, "alice", "legacy") as client:
        assert client.server_capabilities is not None
        assert client.server_capabilities.tools is not None
