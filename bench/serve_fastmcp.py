"""FastMCP baseline: one native ``noop`` tool served statelessly with JSON responses.

Runs in its own virtual environment (bench/.venvs/fastmcp) with fastmcp 4.1.6. Usage:
``python bench/serve_fastmcp.py PORT``.
"""

from __future__ import annotations

import sys

from fastmcp import FastMCP

from _uvicorn import run

server = FastMCP("bench")


@server.tool
async def noop() -> dict[str, object]:
    """Do nothing."""
    return {}


app = server.http_app(path="/mcp", stateless_http=True, json_response=True)

if __name__ == "__main__":
    run(app, int(sys.argv[1]))
