"""A real ``toolbridge serve`` exports its spans over OTLP/HTTP to a collector (docs/call-path.md#traces).

The collector is a small HTTP server in this test that decodes each ``ExportTraceServiceRequest``
(``opentelemetry-proto``, which the exporter depends on); the upstream is a real HTTP server reached by an
OpenAPI connector whose connection's API key is a canary. A REST call carrying a caller's
``traceparent`` must arrive as a call span in the caller's trace with its attempt span under it — and no
exported span may hold the canary or the agent's key.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.e2e.test_serve import serving

pytestmark = pytest.mark.e2e
CANARY = "CANARYotlp5e81c09a7b"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, Any]
    status: int
    service: str


@dataclass
class Collector:
    url: str
    spans: list[Span] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, name: str) -> list[Span]:
        deadline = time.monotonic() + patience(30)
        while time.monotonic() < deadline:
            with self.lock:
                found = [s for s in self.spans if s.name == name]
            if found:
                return found
            time.sleep(0.05)  # bounded polling: the exporter sends when its batch is due
        raise AssertionError(f"no span {name!r} reached the collector; it got {[s.name for s in self.spans]}")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _decoded(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        span.name,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        {a.key: _value(a.value) for a in span.attributes},
                        span.status.code,
                        str(resource.get("service.name")),
                    )
                )
    return spans


@pytest.fixture
def collector() -> Iterator[Collector]:
    sock = loopback_socket()
    found = Collector(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def export(request: Request) -> Response:
        body = await request.body()
        with found.lock:
            found.raw.append(body)
            found.spans.extend(_decoded(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")

    with uvicorn_thread(Starlette(routes=[Route("/v1/traces", export, methods=["POST"])]), sock):
        yield found


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    sock = loopback_socket()
    seen: list[dict[str, str]] = []

    async def item(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append(headers)
        return JSONResponse({"echo": headers}, status_code=200 if request.url.path == "/item" else 500)

    routes = [Route("/item", item), Route("/broken", item)]
    with uvicorn_thread(Starlette(routes=routes), sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen


def _config(tmp_path: Path, upstream: str, telemetry: str) -> Path:
    def get(operation: str) -> dict[str, Any]:
        return {"get": {"operationId": operation, "responses": {"200": {"description": "ok"}}}}

    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": upstream}],
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Key"}}},
        "security": [{"key": []}],
        "paths": {"/item": get("item"), "/broken": get("broken")},
    }
    (tmp_path / "api.json").write_text(json.dumps(document))
    path = tmp_path / "toolbridge.yaml"
    path.write_text(
        f"server: {{database: 'sqlite+aiosqlite:///{tmp_path / 'tb.db'}'}}\n"
        "connectors:\n"
        "  api:\n"
        "    kind: openapi\n"
        "    spec: api.json\n"
        "    connections: {scheme: api_key, name: X-Key, location: header, secret: env:TB_OTLP_KEY}\n"
        "    resilience: {retry: {max_attempts: 2, base_delay: 0.001, max_delay: 0.001}}\n"
        "agents:\n"
        "  assistant: {scopes: ['*']}\n" + telemetry
    )
    return path


@pytest.mark.parametrize("configured_by", ["file", "environment"])
def test_serve_exports_the_spans_of_a_call_in_the_callers_trace(
    tmp_path: Path,
    collector: Collector,
    upstream: tuple[str, list[dict[str, str]]],
    configured_by: str,
) -> None:
    """Configured by ``telemetry.traces`` (the batch sent after 50 ms), or by the ``OTEL_*`` variables
    alone (with a batch delay of 10 minutes: the spans arrive because the server flushes them as it
    stops)."""
    url, seen = upstream
    env = {"TB_OTLP_KEY": CANARY}
    if configured_by == "file":
        telemetry = f"telemetry:\n  traces: {{endpoint: {collector.url}/v1/traces, service_name: tb-e2e}}\n"
        env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    else:
        telemetry = ""
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "tb-e2e"}
        env["OTEL_BSP_SCHEDULE_DELAY"] = "600000"
    headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    with serving(_config(tmp_path, url, telemetry), tmp_path, env) as server:
        headers["authorization"] = f"Bearer {server.key}"
        with httpx2.Client(base_url=server.base, headers=headers, trust_env=False) as http:
            assert http.post("/v1/tools/api.item/call", json={}).status_code == 200
            assert http.post("/v1/tools/api.broken/call", json={}).status_code == 502
        key = server.key
    (call,) = collector.wait_for("toolbridge.call api.item")
    (failed,) = collector.wait_for("toolbridge.call api.broken")
    attempts = {s.span_id: s for s in collector.wait_for("toolbridge.attempt api")}
    assert call.trace_id == CALLER_TRACE and call.parent == CALLER_SPAN
    assert call.service == "tb-e2e" and call.attributes["toolbridge.outcome"] == "ok"
    assert call.attributes["toolbridge.principal"] == "agent:assistant"
    assert failed.status == 2 and failed.attributes["error.type"] == "upstream_status"  # STATUS_CODE_ERROR
    assert failed.attributes["toolbridge.attempts"] == 2
    received = seen[0]["traceparent"].split("-")
    assert received[1] == CALLER_TRACE and attempts[received[2]].parent == call.span_id
    assert len(attempts) == 3  # one for the first call; two for the retried failure
    assert all(CANARY in json.dumps(s) for s in seen)  # the upstream did get (and echo) the key
    for body in collector.raw:
        assert CANARY.encode() not in body and key.encode() not in body
