"""An upstream MCP server (the official SDK's low-level Server) over stdio that declares the ``resources``
and ``prompts`` capabilities but cannot answer every listing: ``resources/templates/list`` has no handler
(the SDK answers -32601, Method not found), and ``prompts/list`` fails with an internal error."""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    schema = {"type": "object", "properties": {"key": {"type": "string"}}}
    return types.ListToolsResult(tools=[types.Tool(name="lookup", input_schema=schema)])


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    key = (params.arguments or {}).get("key", "")
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"value of {key}")])


async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[types.Resource(uri="partial://notes/1", name="note 1")])


async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
    raise MCPError(code=types.INTERNAL_ERROR, message="the prompt store is offline")


server = Server(
    "partial",
    on_list_tools=list_tools,
    on_call_tool=call_tool,
    on_list_resources=list_resources,
    on_list_prompts=list_prompts,
)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
