"""A streamable HTTP MCP server (the official SDK's MCPServer) that tells what it was sent, for the
secret-canary test: ``python -m tests.e2e.echo_mcp_server PORT`` serves /mcp on 127.0.0.1:PORT.

``headers`` answers with the HTTP headers of the request that called it; ``fail`` raises an error that
quotes them (as a careless server's error would).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("echo")


def _headers(ctx: Context) -> str:
    request: Any = ctx.request_context.request
    return json.dumps(dict(request.headers) if request is not None else {})


@server.tool(description="The HTTP headers this call came with.")
def headers(ctx: Context) -> str:
    return _headers(ctx)


@server.tool(description="Fails, quoting the HTTP headers this call came with.")
def fail(ctx: Context) -> str:
    raise ValueError(f"refused: you sent {_headers(ctx)}")


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
