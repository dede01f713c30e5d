"""A stdio MCP server (the official SDK's MCPServer) that starts slowly, like an ``npx`` first run.

Each start appends a line to ``STARTS_FILE``. It reads nothing until the file ``RELEASE_FILE`` exists (a
test creates it when it has seen toolbridge wait): requests sent meanwhile stay in the pipe and are
answered once it starts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("slow")


@server.tool(description="Answer once started.")
def ready() -> str:
    return "ready"


if __name__ == "__main__":
    with Path(os.environ["STARTS_FILE"]).open("a") as starts:
        starts.write(f"{os.getpid()} start\n")
    release = Path(os.environ["RELEASE_FILE"])
    while not release.exists():  # a process installing itself: no reading, no answer
        time.sleep(0.02)
    server.run("stdio")
