"""What ``toolbridge serve`` runs once its options are read: the hub, the web app on the bound socket, and
(unless ``--no-worker``) the outbox, event-delivery and pipeline workers beside it."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import anyio

from toolbridge.cli._output import console
from toolbridge.credentials import KeySource
from toolbridge.hub import Hub
from toolbridge.settings import Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["Serving", "serve_forever"]

out = console()


@dataclass(frozen=True, slots=True)
class Serving:
    """Where and how to serve (the command's options, resolved against the config file)."""

    host: str
    port: int
    sock: socket.socket
    create_agent: str | None
    worker: bool


async def serve_forever(settings: Settings, keys: KeySource | None, serving: Serving) -> None:
    import uvicorn

    from toolbridge.events._worker import delivery_worker
    from toolbridge.pipelines._worker import pipeline_service, pipeline_worker
    from toolbridge.surfaces.app import create_app
    from toolbridge.worker import OutboxWorker

    hub = Hub.from_settings(settings, keys=keys)
    async with hub:
        key = await hub.agents.create(serving.create_agent) if serving.create_agent else None
        server_settings = settings.server
        web = create_app(
            hub,
            max_body_bytes=server_settings.max_body_bytes,
            allowed_origins=server_settings.allowed_origins,
            manage_hub=False,
        )
        config = uvicorn.Config(
            web, host=serving.host, port=serving.port, log_level="warning", access_log=False, lifespan="on"
        )
        operator = key is not None and (await hub.agents.authenticate(key)).is_operator
        base = f"http://{serving.host}:{serving.port}"
        banner(base, hub, key, serving.create_agent, settings.server.redis, operator=operator)
        async with anyio.create_task_group() as tg:
            if serving.worker:
                tg.start_soon(OutboxWorker(hub).run)
                if (deliverer := delivery_worker(hub)) is not None:
                    tg.start_soon(deliverer.run)
                if (runner := pipeline_worker(hub)) is not None:
                    tg.start_soon(runner.run)
            elif (service := pipeline_service(hub)) is not None:
                service.inline = False  # runs are left to 'toolbridge worker'
            server = uvicorn.Server(config)
            with _sigterm_stops(server):
                await server.serve(sockets=[serving.sock])
            tg.cancel_scope.cancel()


@contextmanager
def _sigterm_stops(server: uvicorn.Server) -> Iterator[None]:
    """While ``server`` (a uvicorn server) runs, SIGTERM stops it gracefully — and no more: the hub then
    closes, and the process exits 0 as on Ctrl-C.

    uvicorn stops on SIGTERM and then raises it again with the handler it found restored, so that the
    process ends by the signal. With Python's default handler that was at once, before the hub closed:
    audit entries still queued were lost, the database's connections were never closed, and SQLite never
    checkpointed its WAL, so a backup copy of the database file alone lacked the last commits (found by
    an outside probe of upgrades). This handler is the one uvicorn restores; one arriving before uvicorn
    installed its own asks it to stop. A second SIGTERM while the hub closes ends the process at once."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def stop(sig: int, frame: FrameType | None) -> None:
        if not server.should_exit:
            server.handle_exit(sig, frame)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def banner(
    base: str,
    hub: Hub,
    key: str | None,
    agent: str | None,
    redis: str | None = None,
    *,
    operator: bool = False,
) -> None:
    """What ``serve`` prints once listening; ``operator``: whether ``agent`` (whose ``key`` is printed)
    may sign in to the admin UI."""
    out.print(
        f"[bold]toolbridge[/] serving {len(hub.catalog)} tools  (database: {hub.database.redacted_url})"
    )
    if redis is not None:
        from toolbridge.resilience._ratelimit import redacted_redis_url

        out.print(f"  rate limits and breakers shared through {redacted_redis_url(redis)}", highlight=False)
    out.print(f"  MCP (streamable HTTP): {base}/mcp")
    out.print(f"  REST:                  {base}/v1   (OpenAPI: {base}/v1/openapi.json)")
    out.print(f"  admin UI:              {base}/admin/   ({_sign_in_with(key, operator)})", highlight=False)
    if key:
        out.print(f"  API key for agent {agent!r} (shown once): [bold]{key}[/]", highlight=False)
        out.print(f"  try: curl -s -H 'Authorization: Bearer {key}' {base}/v1/tools", highlight=False)
    out.print("  stop with Ctrl-C")


def _sign_in_with(key: str | None, operator: bool) -> str:
    if key and operator:
        return "sign in with the key below"
    if key:
        return "sign in with an operator's key, not the one below: see docs/admin-ui.md"
    return "sign in with an operator's key"
