"""Trace spans of the call path, and W3C trace context in and out (docs/call-path.md#traces).

An OpenTelemetry SDK tracer provider keeps the spans in memory (tests/_tracing.py); a real upstream on
127.0.0.1 records the ``traceparent`` of every request it gets, and is reached by a configured OpenAPI
connector with an API-key connection. The hub is served over real HTTP for the REST and MCP cases.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, module_server, uvicorn_thread
from tests._tracing import collected_spans, named
from tests.e2e.test_serve import free_port
from toolbridge import Hub, Principal, ToolbridgeError
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio

CANARY = "CANARYtrace7f3a91c2d4e5"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "traces", "version": "1"},
}


@dataclass
class Upstream:
    url: str
    seen: list[dict[str, str]] = field(default_factory=list)
    flaky: int = 0

    def received(self, path: str) -> list[dict[str, str]]:
        return [s for s in self.seen if s["path"] == path]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    sock = loopback_socket()
    served = Upstream(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def record(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        served.seen.append({"path": request.url.path, **headers})
        if request.url.path == "/flaky":
            served.flaky += 1
            if served.flaky % 2:  # every other request fails, the retry succeeds
                return JSONResponse({"error": "busy"}, status_code=503)
        if request.url.path == "/missing":  # an error page that quotes the request, credentials too
            return JSONResponse({"error": "no such thing", "request": headers}, status_code=404)
        return JSONResponse({"ok": True, "echo": headers})

    async def graphql(request: Request) -> Response:
        served.seen.append({"path": request.url.path, **{k.lower(): v for k, v in request.headers.items()}})
        return JSONResponse({"data": {"ping": "pong"}})

    routes = [Route(path, record) for path in ("/items", "/flaky", "/missing")]
    routes.append(Route("/graphql", graphql, methods=["POST"]))
    with uvicorn_thread(Starlette(routes=routes), sock):
        yield served


def _document(url: str) -> dict[str, Any]:
    def get(operation: str) -> dict[str, Any]:
        return {"get": {"operationId": operation, "responses": {"200": {"description": "ok"}}}}

    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": url}],
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
        "security": [{"key": []}],
        "paths": {"/items": get("items"), "/flaky": get("flaky"), "/missing": get("missing")},
    }


@pytest.fixture
def config(tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TB_TRACE_KEY", CANARY)
    (tmp_path / "api.json").write_text(json.dumps(_document(upstream.url)))
    path = tmp_path / "toolbridge.yaml"
    path.write_text(
        f"server: {{database: 'sqlite+aiosqlite:///{tmp_path / 'tb.db'}'}}\n"
        "connectors:\n"
        "  api:\n"
        "    kind: openapi\n"
        "    spec: api.json\n"
        "    connections: {scheme: api_key, name: X-API-Key, location: header, secret: env:TB_TRACE_KEY}\n"
        "    resilience: {retry: {base_delay: 0.001, max_delay: 0.001}}\n"
        "  gql:\n"
        "    kind: graphql\n"
        f"    endpoint: {upstream.url}/graphql\n"
        "    schema: shop.graphql\n"
    )
    (tmp_path / "shop.graphql").write_text("type Query { ping: String }\n")
    return path


@pytest.fixture
def hub(config: Path) -> Hub:
    return Hub.from_file(config)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with collected_spans() as exporter:
        yield exporter


def _context_of(received: dict[str, str]) -> tuple[str, str]:
    found = TRACEPARENT.fullmatch(received["traceparent"])
    assert found is not None, received["traceparent"]
    return found.group(1), found.group(2)


def _ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _one_call(spans: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    finished = spans.get_finished_spans()
    (call,) = named(finished, "toolbridge.call")
    attempts = named(finished, "toolbridge.attempt")
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
        assert attempt.kind is SpanKind.CLIENT
    return call, attempts


async def test_the_upstream_receives_the_attempt_span_as_its_parent(
    hub: Hub, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    async with hub:
        await hub.call(Principal.local(), "api.items", request_id="rq-trace-1")
    call, (attempt,) = _one_call(spans)
    (received,) = upstream.received("/items")[-1:]
    assert _context_of(received) == _ids(attempt)
    assert call.name == "toolbridge.call api.items" and call.kind is SpanKind.SERVER
    assert call.status.status_code is StatusCode.UNSET
    assert dict(call.attributes or {}) == {
        "toolbridge.tool": "api.items",
        "toolbridge.connector": "api",
        "toolbridge.principal": Principal.local().id,
        "toolbridge.request_id": "rq-trace-1",
        "toolbridge.idempotency_key_given": False,
        "toolbridge.replayed": False,
        "toolbridge.outcome": "ok",
        "toolbridge.attempts": 1,
        "http.response.status_code": 200,
    }
    assert attempt.attributes is not None and attempt.attributes["toolbridge.attempt"] == 1
    assert "toolbridge.retry_reason" not in attempt.attributes


async def test_a_retried_call_has_two_attempt_spans_under_one_call_span(
    hub: Hub, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    upstream.flaky = 0
    async with hub:
        await hub.call(Principal.local(), "api.flaky", idempotency_key="k-trace-1")
    call, attempts = _one_call(spans)
    assert [a.attributes["toolbridge.attempt"] for a in attempts if a.attributes] == [1, 2]
    first, second = attempts
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None and first.attributes["http.response.status_code"] == 503
    assert second.attributes is not None
    assert second.attributes["toolbridge.retry_reason"] == "retry: upstream_status 503"
    assert second.status.status_code is StatusCode.UNSET
    received = [_context_of(r) for r in upstream.received("/flaky")[-2:]]
    assert received == [_ids(first), _ids(second)]  # one trace, each request under its own attempt
    assert call.attributes is not None
    assert call.attributes["toolbridge.attempts"] == 2
    assert call.attributes["toolbridge.idempotency_key_given"] is True
    assert call.attributes["http.response.status_code"] == 200


async def test_a_failed_call_span_has_status_error_and_the_code(
    hub: Hub, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    async with hub:
        with pytest.raises(ToolbridgeError) as failed:
            await hub.call(Principal.local(), "api.missing")
    call, (attempt,) = _one_call(spans)
    code = failed.value.code
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.ERROR and span.status.description == code
        assert span.attributes is not None and span.attributes["error.type"] == code
        assert span.attributes["http.response.status_code"] == 404
    assert call.attributes is not None and call.attributes["toolbridge.outcome"] == "error"
    assert not call.events and not attempt.events  # the error's message is not recorded


async def test_a_call_of_an_unknown_tool_is_traced_as_failed(hub: Hub, spans: InMemorySpanExporter) -> None:
    async with hub:
        with pytest.raises(ToolbridgeError):
            await hub.call(Principal.local(), "api.nope")
    call, attempts = _one_call(spans)
    assert attempts == [] and call.status.status_code is StatusCode.ERROR
    assert call.name == "toolbridge.call (unknown)"  # agents' typos make no new span names
    assert call.attributes is not None and call.attributes["toolbridge.tool"] == "api.nope"
    assert call.status.description == "tool_not_found"


async def test_without_a_tracer_provider_nothing_is_sent_upstream(hub: Hub, upstream: Upstream) -> None:
    async with hub:
        await hub.call(Principal.local(), "api.items")
    assert "traceparent" not in upstream.received("/items")[-1]


async def test_graphql_requests_carry_the_attempt_span(
    hub: Hub, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    async with hub:
        (tool,) = [t.name for t in hub.catalog if t.connector == "gql"]
        await hub.call(Principal.local(), tool, {})
    _, (attempt,) = _one_call(spans)
    assert _context_of(upstream.received("/graphql")[-1]) == _ids(attempt)


async def test_mcp_upstream_requests_carry_the_attempt_span(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """An MCP server over streamable HTTP (the official SDK's) says which headers its call came with."""
    port = free_port()
    with module_server("tests.e2e.echo_mcp_server", port) as url:
        path = tmp_path / "toolbridge.yaml"
        path.write_text(
            f"server: {{database: 'sqlite+aiosqlite:///{tmp_path / 'tb.db'}'}}\n"
            f"connectors:\n  echo:\n    kind: mcp\n    url: {url}\n    approve: all-on-first-connect\n"
        )
        async with Hub.from_file(path) as hub:
            result = await hub.call(Principal.local(), "echo.headers")
    _, (attempt,) = _one_call(spans)
    (content,) = json.loads(result.text)["content"]
    received = {k.lower(): v for k, v in json.loads(content["text"]).items()}
    assert _context_of(received) == _ids(attempt)


# -- inbound: REST and MCP over HTTP -----------------------------------------------------------------------


@asynccontextmanager
async def served(config: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, str]]:
    """The hub of ``config`` served by ``toolbridge serve``'s app over real HTTP: a client, and the key of
    an agent that may call every tool (made beforehand, in the hub's database)."""
    async with Hub.from_file(config) as maker:
        key = await maker.agents.create("assistant", ["*"])
    sock = loopback_socket()
    with uvicorn_thread(create_app(Hub.from_file(config)), sock):
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx2.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
            yield http, key


def _caller(sampled: bool = True) -> dict[str, str]:
    return {
        "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-{'01' if sampled else '00'}",
        "tracestate": "vendor=caller",
    }


def _continues_the_caller(spans: InMemorySpanExporter, upstream: Upstream) -> None:
    call, (attempt,) = _one_call(spans)
    assert f"{call.context.trace_id:032x}" == CALLER_TRACE
    assert call.parent is not None and call.parent.is_remote
    assert f"{call.parent.span_id:016x}" == CALLER_SPAN
    received = upstream.received("/items")[-1]
    assert _context_of(received) == (CALLER_TRACE, f"{attempt.context.span_id:016x}")
    assert received["tracestate"] == "vendor=caller"


async def test_a_rest_call_continues_the_callers_trace(
    config: Path, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    async with served(config) as (http, key):
        headers = {"authorization": f"Bearer {key}", **_caller()}
        answer = await http.post("/v1/tools/api.items/call", json={"arguments": {}}, headers=headers)
    assert answer.status_code == 200, answer.text
    _continues_the_caller(spans, upstream)


@pytest.mark.parametrize("progress", [False, True], ids=["lean-path", "sdk-handler"])
async def test_an_mcp_call_continues_the_callers_trace(
    config: Path, upstream: Upstream, spans: InMemorySpanExporter, progress: bool
) -> None:
    """Over streamable HTTP (2026-07-28); with a progress token the call runs in the MCP SDK's handler, in
    a task of its own that did not inherit the request's context."""
    meta: dict[str, Any] = {**ENVELOPE, **({"progressToken": "p1"} if progress else {})}
    params = {"name": "api.items", "arguments": {}, "_meta": meta}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    async with served(config) as (http, key):
        headers = {
            "authorization": f"Bearer {key}",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": "api.items",
            **_caller(),
        }
        answer = await http.post("/mcp", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert '"isError":true' not in answer.text.replace(" ", ""), answer.text
    _continues_the_caller(spans, upstream)


async def test_no_span_carries_a_secret(
    config: Path, hub: Hub, upstream: Upstream, spans: InMemorySpanExporter
) -> None:
    """The connection's API key is a canary; the upstream echoes it in its answers and error pages. Calls
    that succeed, are retried and fail, in-process and over REST; then every exported span (name,
    attributes, events, links, status, resource) is scanned for it."""
    upstream.flaky = 0
    async with hub:
        await hub.call(Principal.local(), "api.items", idempotency_key="k-canary-1")
        await hub.call(Principal.local(), "api.flaky")
        with pytest.raises(ToolbridgeError):
            await hub.call(Principal.local(), "api.missing", {"note": CANARY})
        with pytest.raises(ToolbridgeError):
            await hub.call(Principal.local(), "api.items", {"unexpected": CANARY})
    async with served(config) as (http, key):
        for name in ("api.items", "api.missing"):
            await http.post(f"/v1/tools/{name}/call", json={}, headers={"authorization": f"Bearer {key}"})
    assert any(CANARY in json.dumps(s) for s in upstream.seen)  # the upstream did get (and echo) it
    exported = spans.get_finished_spans()
    assert len(named(exported, "toolbridge.call")) == 6
    for span in exported:
        assert CANARY not in span.to_json(), span.name
