"""A stdio MCP server (the official SDK's MCPServer) that reports a secret it got in its environment."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("env")


@server.tool(description="Say whether UPSTREAM_TOKEN is set, and echo it (a leaky upstream).")
def token() -> str:
    return f"token={os.environ.get('UPSTREAM_TOKEN', '')}"


if __name__ == "__main__":
    server.run("stdio")
