"""An upstream MCP server (the official SDK's low-level Server) over stdio that pages its lists one item
at a time: ``PAGED_ITEMS`` tools and resources (150 by default). With ``PAGED_LOOP`` set, the tools' cursor
after the third page is the third page's own, for ever (a server whose cursors never end)."""

from __future__ import annotations

import os
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

ITEMS = int(os.environ.get("PAGED_ITEMS", "150"))
LOOP = bool(os.environ.get("PAGED_LOOP"))


def position(params: Any) -> int:
    cursor = getattr(params, "cursor", None) if params is not None else None
    return int(cursor) if cursor else 0


def next_cursor(at: int) -> str | None:
    if LOOP and at >= 2:
        return "2"
    return str(at + 1) if at + 1 < ITEMS else None


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    at = position(params)
    tool = types.Tool(name=f"tool_{at:04d}", input_schema={"type": "object"})
    return types.ListToolsResult(tools=[tool], next_cursor=next_cursor(at))


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=params.name)])


async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
    at = position(params)
    found = types.Resource(uri=f"paged://item/{at}", name=f"item {at}")
    return types.ListResourcesResult(resources=[found], next_cursor=str(at + 1) if at + 1 < ITEMS else None)


server = Server("paged", on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
