"""The floor: a bare Starlette app with one route that answers any POST with a fixed JSON-RPC result.

It reads the request body, so it pays for everything a real server must (HTTP parsing, body, response)
and nothing else. Usage: ``python bench/serve_floor.py PORT``.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from _uvicorn import run

_RESULT = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{}"}],"isError":false}}'


async def endpoint(request: Request) -> Response:
    await request.body()
    return Response(_RESULT, media_type="application/json")


app = Starlette(
    routes=[Route("/mcp", endpoint, methods=["POST"]), Route("/healthz", endpoint, methods=["GET"])]
)

if __name__ == "__main__":
    run(app, int(sys.argv[1]))
