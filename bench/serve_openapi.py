"""The servers of bench/openapi_call.py: a small REST upstream, and toolbridge and FastMCP in front of it.

* ``upstream PORT``: a bare Starlette app serving ``GET /openapi.json`` (an OpenAPI 3.0 document, its
  server URL pointing at this port) and ``GET /pets/{petId}`` (a small fixed JSON object).
* ``toolbridge PORT KEY_FILE CONFIG``: ``Hub.from_file(CONFIG)`` (a toolbridge.yaml with one
  ``kind: openapi`` connector reading the upstream's document), the agent ``bench`` created and its key
  written to KEY_FILE, then ``create_app(hub, manage_hub=False)`` served (MCP at /mcp).
* ``fastmcp PORT UPSTREAM_URL``: ``FastMCP.from_openapi`` on the upstream's document with default
  settings, served with ``http_app(stateless_http=True, json_response=True)``. Runs in bench/.venvs/fastmcp
  (fastmcp 4.1.6), so it imports nothing from toolbridge.

Each role imports only what it needs; all run under the uvicorn settings of bench/_uvicorn.py.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PET = {"id": 1, "name": "Rex", "tag": "dog"}


def document(port: int) -> dict[str, Any]:
    pet = {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "tag": {"type": "string"}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Pets (bench)", "version": "1.0.0"},
        "servers": [{"url": f"http://127.0.0.1:{port}"}],
        "paths": {
            "/pets/{petId}": {
                "get": {
                    "operationId": "getPet",
                    "summary": "One pet by id",
                    "parameters": [
                        {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The pet",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}},
                        },
                        "404": {"description": "No such pet"},
                    },
                }
            }
        },
        "components": {"schemas": {"Pet": pet}},
    }


def upstream(port: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from _uvicorn import run

    spec = json.dumps(document(port)).encode()

    async def openapi(_request: Request) -> Response:
        return Response(spec, media_type="application/json")

    async def get_pet(request: Request) -> Response:
        pet_id = request.path_params["pet_id"]
        return Response(json.dumps({**PET, "id": pet_id}).encode(), media_type="application/json")

    routes = [Route("/openapi.json", openapi), Route("/pets/{pet_id:int}", get_pet, methods=["GET"])]
    run(Starlette(routes=routes), port)


def toolbridge(port: int, key_file: str, config: str) -> None:
    import os
    from pathlib import Path

    import uvicorn

    from _uvicorn import config as uvicorn_config
    from _uvicorn import run_main
    from toolbridge import Hub
    from toolbridge.surfaces.app import create_app

    async def serve() -> None:
        hub = Hub.from_file(config)
        async with hub:
            key = await hub.agents.create("bench", scopes=["*"])
            partial = Path(key_file).with_suffix(".tmp")
            partial.write_text(key)
            os.replace(partial, key_file)
            await uvicorn.Server(uvicorn_config(create_app(hub, manage_hub=False), port)).serve()

    run_main(serve())


def fastmcp(port: int, upstream_url: str) -> None:
    import httpx2
    from fastmcp import FastMCP  # type: ignore[import-not-found]

    from _uvicorn import run

    spec = httpx2.get(f"{upstream_url}/openapi.json", timeout=10, trust_env=False).raise_for_status().json()
    server = FastMCP.from_openapi(spec)
    run(server.http_app(path="/mcp", stateless_http=True, json_response=True), port)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "upstream":
        upstream(int(args[0]))
    elif role == "toolbridge":
        toolbridge(int(args[0]), args[1], args[2])
    elif role == "fastmcp":
        fastmcp(int(args[0]), args[1])
    else:
        sys.exit(f"unknown role {role!r}: upstream, toolbridge or fastmcp")
