"""FastMCP 4.1.6 proxy in front of an upstream MCP server, with its default settings.

Runs in bench/.venvs/fastmcp. Usage: ``python bench/serve_fastmcp_proxy.py PORT UPSTREAM_URL``.
"""

from __future__ import annotations

import sys

from fastmcp.server import create_proxy

from _uvicorn import run

if __name__ == "__main__":
    proxy = create_proxy(sys.argv[2])
    run(proxy.http_app(path="/mcp"), int(sys.argv[1]))
