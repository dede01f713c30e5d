"""toolbridge federating one upstream MCP server (streamable HTTP) as connector ``up``, serving /mcp.

Usage: ``python bench/serve_toolbridge_mcp.py PORT KEY_FILE UPSTREAM_URL [fast]``. The upstream is
reached when the hub starts; the agent key is written to KEY_FILE before the app serves. ``fast``: the
connector's opt-in fast path (its own HTTP/1.1 client).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from _uvicorn import config, run_main
from toolbridge import Hub
from toolbridge.connectors.mcp import HttpServer, McpConnector
from toolbridge.surfaces.app import create_app


async def serve(port: int, key_file: Path, upstream: str, fast: bool) -> None:
    hub = Hub()
    server = HttpServer(url=upstream, fast_path=True) if fast else HttpServer(url=upstream)
    hub.add_connector(McpConnector("up", server))
    async with hub:
        key = await hub.agents.create("bench", scopes=["*"])
        partial = key_file.with_suffix(".tmp")
        partial.write_text(key)
        os.replace(partial, key_file)
        await uvicorn.Server(config(create_app(hub, manage_hub=False), port)).serve()


if __name__ == "__main__":
    run_main(serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:] == ["fast"]))
