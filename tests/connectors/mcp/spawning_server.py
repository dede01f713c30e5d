"""A stdio MCP server (the official SDK's MCPServer) that starts a long-lived child process of its own
and writes the child's pid to the file named by CHILD_PID_FILE, as servers that start helpers do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("spawning")


@server.tool(description="Say the pid of the helper this server started.")
def helper() -> str:
    return Path(os.environ["CHILD_PID_FILE"]).read_text()


if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    Path(os.environ["CHILD_PID_FILE"]).write_text(str(child.pid))
    server.run("stdio")
