"""A counting media upstream for the video pipeline: downloads, transcodes, records and notifications, each
created by ``POST`` (once per ``Idempotency-Key``: a key seen before answers its first answer again) and
removed by ``DELETE``. ``GET /_state`` reports the live objects and the effects applied per kind.

Test controls: ``POST /_fail {kind, count}`` makes the next ``count`` creations of ``kind`` answer 422 before
any effect; ``POST /_hold {kind}`` makes the next creation of ``kind`` apply its effect and then hold the
answer until ``POST /_release`` (a worker can be killed while the request is in flight).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KINDS = ("downloads", "transcodes", "records", "notifications")
_OPS = {
    "downloads": ("Download", {"url": {"type": "string"}}, ["url"]),
    "transcodes": ("Transcode", {"source": {"type": "integer"}, "format": {"type": "string"}}, ["source"]),
    "records": ("Record", {"title": {"type": "string"}, "path": {"type": "string"}}, ["title", "path"]),
    "notifications": ("Notification", {"channel": {"type": "string"}, "text": {"type": "string"}}, ["text"]),
}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind, (name, properties, required) in _OPS.items():
        key = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
        body = {"type": "object", "properties": properties, "required": required}
        paths[f"/{kind}"] = {
            "post": {
                "operationId": f"create{name}",
                "parameters": [key],
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "created"}, "422": {"description": "refused"}},
            }
        }
        paths[f"/{kind}/{{id}}"] = {
            "delete": {
                "operationId": f"delete{name}",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "deleted"}},
            }
        }
    return {"openapi": "3.0.3", "info": {"title": "media", "version": "1"}, "paths": paths}


class Media:
    def __init__(self) -> None:
        self.live: dict[str, dict[int, dict[str, Any]]] = {k: {} for k in KINDS}
        self.applied: Counter[str] = Counter()
        self.answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.failing: Counter[str] = Counter()
        self.holding: set[str] = set()
        self.held = threading.Event()  # set when a held request applied its effect
        self.release = threading.Event()
        self._next = 0
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"live": {k: len(v) for k, v in self.live.items()}, "applied": dict(self.applied)}

    async def create(self, request: Request) -> Response:
        kind = request.url.path.strip("/")
        body = await request.json()
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key is not None and key in self.answers:
                status, answer = self.answers[key]
                return JSONResponse(answer, status_code=status)
            if self.failing[kind] > 0:
                self.failing[kind] -= 1
                return JSONResponse({"error": f"{kind} refused (injected)"}, status_code=422)
            self._next += 1
            item = {"id": self._next, **body, "bytes": 1000 + self._next}
            self.live[kind][self._next] = item
            self.applied[kind] += 1
            if key is not None:
                self.answers[key] = (200, item)
            hold = kind in self.holding
            self.holding.discard(kind)
        if hold:  # the effect is applied; the answer waits (a test kills the caller meanwhile)
            self.held.set()
            import anyio.to_thread

            await anyio.to_thread.run_sync(self.release.wait, 60.0)
        return JSONResponse(item)

    async def delete(self, request: Request) -> Response:
        kind = request.url.path.strip("/").split("/")[0]
        with self._lock:
            found = self.live[kind].pop(int(request.path_params["id"]), None)
        return JSONResponse({"deleted": found is not None})

    async def control(self, request: Request) -> Response:
        what = request.path_params["what"]
        body = await request.json() if what != "state" else {}
        if what == "fail":
            self.failing[body["kind"]] = int(body.get("count", 1))
        elif what == "hold":
            self.held.clear()
            self.release.clear()
            self.holding.add(body["kind"])
        elif what == "release":
            self.release.set()
        return JSONResponse(self.state())

    def app(self) -> Starlette:
        routes = [Route("/_{what}", self.control, methods=["GET", "POST"])]
        for kind in KINDS:
            routes.append(Route(f"/{kind}", self.create, methods=["POST"]))
            routes.append(Route(f"/{kind}/{{id:int}}", self.delete, methods=["DELETE"]))
        return Starlette(routes=routes)


def write_document(folder: Path) -> Path:
    path = folder / "media.json"
    path.write_text(json.dumps(document()))
    return path
