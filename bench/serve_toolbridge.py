"""toolbridge with one no-op Python tool, ``bench.noop``, serving MCP at /mcp and REST at /v1.

The agent key must exist before the first request, so the hub is entered here, the key created and
written to KEY_FILE, and only then is the app served (its lifespan leaves the hub alone).
Usage: ``python bench/serve_toolbridge.py PORT KEY_FILE [DATABASE_URL]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

from _uvicorn import config, run_main
from toolbridge import Hub
from toolbridge.surfaces.app import create_app


def build_hub(database: str | None) -> Hub:
    hub = Hub(database=database) if database else Hub()

    @hub.tool(connector="bench", read_only=True, blocking=False)
    async def noop() -> dict[str, object]:
        """Do nothing."""
        return {}

    return hub


async def serve(port: int, key_file: Path, database: str | None) -> None:
    hub = build_hub(database)
    async with hub:
        key = await hub.agents.create("bench", scopes=["*"])
        partial = key_file.with_suffix(".tmp")
        partial.write_text(key)
        os.replace(partial, key_file)
        await uvicorn.Server(config(create_app(hub, manage_hub=False), port)).serve()


if __name__ == "__main__":
    run_main(serve(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
