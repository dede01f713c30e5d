"""serve_stdio in a subprocess, driven by the official MCP client over stdin/stdout, in both eras."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import Client, MCPError, StdioServerParameters

pytestmark = pytest.mark.anyio

APP = Path(__file__).with_name("stdio_app.py")


def server(*scopes: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(APP), *scopes], cwd=str(APP.parent))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_stdio_lists_and_calls_tools(mode: str) -> None:
    async with Client(server(), mode=mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["demo.add", "demo.echo"]
        result = await client.call_tool("demo.add", {"a": 1, "b": 2})
        assert result.structured_content == {"sum": 3}
        with pytest.raises(MCPError, match="did you mean 'demo.echo'"):
            await client.call_tool("demo.ech", {"text": "x"})


async def test_stdio_serves_the_principals_view() -> None:
    async with Client(server("demo.*:read"), mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["demo.echo"]
        with pytest.raises(MCPError, match="no tool named 'demo.add'"):  # unseen is missing
            await client.call_tool("demo.add", {"a": 1, "b": 2})
