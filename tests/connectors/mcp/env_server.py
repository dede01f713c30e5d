"""A stdio MCP server (the official SDK's MCPServer) that reports a secret it got in its environment."""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

server = MCPServer("env")


@server.tool(description="Say whether UPSTREAM_TOKEN is set, and echo it (a leaky upstream).")
def token() -> str:
    return f"token={os.environ.get('UPSTREAM_TOKEN', '')}"


@server.prompt(description="A prompt that quotes UPSTREAM_TOKEN (a leaky upstream).")
def quote() -> str:
    return f"use token={os.environ.get('UPSTREAM_TOKEN', '')}"


@server.prompt(description="A prompt that fails quoting UPSTREAM_TOKEN.")
def refuse() -> str:
    raise MCPError(-32602, f"token={os.environ.get('UPSTREAM_TOKEN', '')} is not accepted here")


@server.resource("env://token", description="UPSTREAM_TOKEN as a resource (a leaky upstream).")
def token_resource() -> str:
    return f"token={os.environ.get('UPSTREAM_TOKEN', '')}"


if __name__ == "__main__":
    server.run("stdio")
