"""The one set of uvicorn settings every benchmark server runs with.

Imported by the server scripts beside it, including the FastMCP one that runs in its own virtual
environment, so it depends on nothing but uvicorn.
"""

from __future__ import annotations

from typing import Any

import uvicorn

SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": 1,
    "access_log": False,
    "log_level": "warning",
    # Pinned rather than "auto": "auto" picks uvloop/httptools where installed, and the venvs differ.
    "loop": "asyncio",
    "http": "h11",
    "lifespan": "on",
    "timeout_keep_alive": 60,
}


def config(app: Any, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, port=port, **SETTINGS)


def run(app: Any, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until the process is signalled."""
    uvicorn.Server(config(app, port)).run()
