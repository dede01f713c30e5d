"""A small upstream MCP server (the official SDK's MCPServer) over stdio, for pinning and era tests.

``TOOL_DESCRIPTION_FILE`` names a file holding the description of its ``lookup`` tool, so a test can
change the definition between two connections.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("changing")
description = Path(os.environ["TOOL_DESCRIPTION_FILE"]).read_text().strip()


@server.tool(description=description)
def lookup(key: str) -> str:
    return f"value of {key}"


@server.tool(description="Sleep, then answer.")
async def slow(seconds: float) -> str:
    import anyio

    await anyio.sleep(seconds)
    return "done"


if __name__ == "__main__":
    server.run("stdio")
