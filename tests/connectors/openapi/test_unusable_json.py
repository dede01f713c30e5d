"""A JSON answer Python's ``json`` reads badly is shown as the upstream's text with the reason, over real
HTTP: nested 5,000 levels deep it raised RecursionError and the call failed as "a toolbridge bug"; a lone
surrogate escape was read, then failed to encode where the result was written; NaN came through as a number
JSON does not have (found with the GraphQL connector's equivalent by an outside fault probe)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub, Principal
from toolbridge.connectors.openapi import OpenAPIConnector

pytestmark = pytest.mark.anyio
BODIES = {
    "deep": b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "surrogate": b'{"name": "x\\ud800"}',
    "nan": b'{"ratio": NaN}',
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    async def body(request: Request) -> Response:
        return Response(BODIES[request.path_params["kind"]], media_type="application/json")

    sock = loopback_socket()
    with uvicorn_thread(Starlette(routes=[Route("/things/{kind}", body)]), sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("deep", "it is nested too deeply"),
        ("surrogate", "lone UTF-16 surrogate"),
        ("nan", "NaN is not a JSON number"),
    ],
)
async def test_json_it_cannot_use_is_the_upstreams_text_with_the_reason(
    upstream: str, tmp_path: Path, kind: str, why: str
) -> None:
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/things/{kind}": {
                "get": {
                    "operationId": "getThing",
                    "parameters": [
                        {"name": "kind", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    (tmp_path / "doc.json").write_text(json.dumps(document))
    hub = Hub()
    hub.add_connector(
        OpenAPIConnector.from_spec(
            "api", tmp_path / "doc.json", base_url=upstream, allow_hosts=[upstream.removeprefix("http://")]
        )
    )
    async with hub:
        result = await hub.call(Principal.local(), "api.get_thing", {"kind": kind})
    assert isinstance(result.value, str), result.value
    assert "but it is not JSON toolbridge can use" in result.value and why in result.value
    json.dumps(result.value).encode()  # writable, as the REST answer and the audit need it
