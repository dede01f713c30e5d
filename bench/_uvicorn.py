"""The one set of uvicorn settings every benchmark server runs with.

Imported by the server scripts beside it, including the FastMCP one that runs in its own virtual
environment, so it depends on nothing but uvicorn.

Each server runs as its package installs it: the event loop and HTTP parser are uvicorn's "auto"
choice, which takes uvloop and httptools where they are installed. toolbridge declares both (and
``toolbridge serve`` runs on them); FastMCP 4.1.6 installs plain uvicorn, so its servers run on asyncio
and h11, as its users get them. The bare-Starlette floor runs in toolbridge's venv, on the same stack as
toolbridge. :func:`run_main` runs a server's own ``async def main`` on that same loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any

import uvicorn

SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": 1,
    "access_log": False,
    "log_level": "warning",
    "loop": "auto",
    "http": "auto",
    "lifespan": "on",
    "timeout_keep_alive": 60,
}


def config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, port=port, **SETTINGS)


def run(app: Any, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until the process is signalled."""
    uvicorn.Server(config(app, port)).run()


def stack() -> str:
    """The event loop and HTTP parser uvicorn's "auto" picks in this venv (for the report)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}+{http}"


def run_main(main: Coroutine[Any, Any, None]) -> None:
    """Run a server's ``main`` on the loop uvicorn's "auto" would pick (uvloop where installed)."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
