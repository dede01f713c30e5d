"""What ``toolbridge serve`` runs once its options are read: the hub, the web app on the bound socket, and
(unless ``--no-worker``) the outbox, event-delivery and pipeline workers beside it."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import anyio

from toolbridge.cli._output import console
from toolbridge.credentials import KeySource
from toolbridge.hub import Hub
from toolbridge.settings import Settings

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
        banner(f"http://{serving.host}:{serving.port}", hub, key, serving.create_agent)
        async with anyio.create_task_group() as tg:
            if serving.worker:
                tg.start_soon(OutboxWorker(hub).run)
                if (deliverer := delivery_worker(hub)) is not None:
                    tg.start_soon(deliverer.run)
                if (runner := pipeline_worker(hub)) is not None:
                    tg.start_soon(runner.run)
            elif (service := pipeline_service(hub)) is not None:
                service.inline = False  # runs are left to 'toolbridge worker'
            await uvicorn.Server(config).serve(sockets=[serving.sock])
            tg.cancel_scope.cancel()


def banner(base: str, hub: Hub, key: str | None, agent: str | None) -> None:
    out.print(
        f"[bold]toolbridge[/] serving {len(hub.catalog)} tools  (database: {hub.database.redacted_url})"
    )
    out.print(f"  MCP (streamable HTTP): {base}/mcp")
    out.print(f"  REST:                  {base}/v1   (OpenAPI: {base}/v1/openapi.json)")
    if key:
        out.print(f"  API key for agent {agent!r} (shown once): [bold]{key}[/]", highlight=False)
        out.print(f"  try: curl -s -H 'Authorization: Bearer {key}' {base}/v1/tools", highlight=False)
    out.print("  stop with Ctrl-C")
