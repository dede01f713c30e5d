"""A hub served over stdio, as ``toolbridge mcp`` does; started as a subprocess by test_stdio.py."""

from __future__ import annotations

import sys

import anyio

from toolbridge import Hub, Principal
from toolbridge.surfaces.mcp import serve_stdio


def make_hub() -> Hub:
    hub = Hub()

    @hub.tool(connector="demo", read_only=True)
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @hub.tool(connector="demo")
    async def add(a: int, b: int) -> dict[str, int]:
        """Add two numbers."""
        return {"sum": a + b}

    @hub.tool(connector="demo")
    async def hang() -> str:
        """Never answers (until cancelled)."""
        await anyio.sleep_forever()
        return "never"

    return hub


if __name__ == "__main__":
    scopes = sys.argv[1:] or ["*"]
    anyio.run(serve_stdio, make_hub(), Principal.agent("desktop", scopes))
