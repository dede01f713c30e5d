"""toolbridge federating one upstream MCP server (streamable HTTP) as connector ``up``, serving /mcp.

Usage: ``python bench/serve_toolbridge_mcp.py PORT KEY_FILE UPSTREAM_URL [fast|httpx2]``. The upstream is
reached when the hub starts; the agent key is written to KEY_FILE before the app serves. ``fast`` or
``httpx2``: the connector's ``fast_path`` set to true or false (its own HTTP/1.1, or httpx2's client);
neither: the connector's default (the fast path, as no proxy is given).
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


async def serve(port: int, key_file: Path, upstream: str, client: str | None) -> None:
    hub = Hub()
    if client is None:  # the default, also for an older tree (--baseline-src) that may lack fast_path
        server = HttpServer(url=upstream)
    else:
        server = HttpServer(url=upstream, fast_path=client == "fast")
    hub.add_connector(McpConnector("up", server))
    async with hub:
        key = await hub.agents.create("bench", scopes=["*"])
        partial = key_file.with_suffix(".tmp")
        partial.write_text(key)
        os.replace(partial, key_file)
        await uvicorn.Server(config(create_app(hub, manage_hub=False), port)).serve()


if __name__ == "__main__":
    client = sys.argv[4] if len(sys.argv) > 4 else None
    if client not in (None, "fast", "httpx2"):
        raise SystemExit(f"the client is 'fast' or 'httpx2', not {client!r}")
    run_main(serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], client))
