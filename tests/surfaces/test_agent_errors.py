"""Errors an agent can act on: what the upstream said, how long to wait, what a valid value looks like.

Over MCP (both protocol eras) the model reads the tool error's text, not its ``_meta``; over REST the
problem document carries the same facts. The upstream is an OpenAPI service behind an
``httpx2.MockTransport`` (an exact 422 body and a 429 with ``Retry-After``, on demand).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from tests.connectors.openapi.conftest import ingested, openapi
from tests.surfaces.mcp.conftest import ENVELOPE, MODERN, Served, serve
from toolbridge import Hub
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.resilience import ResiliencePolicy, RetryPolicy
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio

JSON_OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
SHOP = openapi(
    {
        "/orders": {
            "post": {
                "operationId": "create_order",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "quantity": {"type": "integer"},
                                    "deliver_at": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    }
                },
                "responses": JSON_OK,
            }
        },
        "/stock": {"get": {"operationId": "stock", "responses": JSON_OK}},
        "/events": {
            "get": {
                "operationId": "events",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": JSON_OK,
            }
        },
    }
)
EVENTS = {"events": [{"id": i, "text": "x" * 100} for i in range(5000)]}  # about 600 KB
REJECTION = {"error": {"code": "quantity_too_high", "message": "quantity must be at most 10", "max": 10}}


def upstream(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/orders"):
        return httpx2.Response(422, json=REJECTION)
    if request.url.path.endswith("/events"):
        return httpx2.Response(200, json=EVENTS)
    return httpx2.Response(429, headers={"Retry-After": "7"}, json={"error": "slow down"})


def shop_hub() -> Hub:
    hub = Hub()
    connector = OpenAPIConnector(
        "shop",
        ingested(SHOP, name="shop"),
        base_url="http://127.0.0.1:9/v1",
        transport=httpx2.MockTransport(upstream),
    )
    hub.add_connector(connector, policy=ResiliencePolicy(retry=RetryPolicy(max_attempts=1)))
    return hub


@pytest.fixture
async def mcp() -> AsyncIterator[Served]:
    async with serve(shop_hub()) as served:
        yield served


@asynccontextmanager
async def rest() -> AsyncIterator[tuple[httpx2.AsyncClient, dict[str, str]]]:
    hub = shop_hub()
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("agent", scopes=["*"])
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as http:
            yield http, {"Authorization": f"Bearer {key}"}


async def mcp_error(served: Served, era: str, tool: str, arguments: dict[str, Any]) -> str:
    params = {"name": tool, "arguments": arguments}
    if era == "modern":
        response = await served.modern("tools/call", params)
    else:
        response = await served.legacy(await served.initialize(), "tools/call", params)
    result = response.json()["result"]
    assert result["isError"] is True, result
    return "\n".join(c["text"] for c in result["content"])


ERAS = pytest.mark.parametrize("era", ["modern", "legacy"])


@ERAS
async def test_an_upstream_422_body_reaches_the_model(mcp: Served, era: str) -> None:
    text = await mcp_error(mcp, era, "shop.create_order", {"quantity": 50})
    assert "HTTP 422" in text
    assert (
        'upstream said: {"error":{"code":"quantity_too_high","message":"quantity must be at most 10"' in text
    )


@ERAS
async def test_a_429_says_how_many_seconds_to_wait(mcp: Served, era: str) -> None:
    text = await mcp_error(mcp, era, "shop.stock", {})
    assert "HTTP 429" in text and "retry after: 7 s" in text


@ERAS
async def test_a_format_error_shows_a_valid_example(mcp: Served, era: str) -> None:
    text = await mcp_error(mcp, era, "shop.create_order", {"quantity": 1, "deliver_at": "tomorrow noon"})
    assert "deliver_at: 'tomorrow noon' is not a 'date-time'; write it like '2026-12-02T10:00:00Z'" in text


async def test_rest_problem_documents_carry_the_same_facts() -> None:
    async with rest() as (http, auth):
        rejected = await http.post(
            "/v1/tools/shop.create_order/call", json={"arguments": {"quantity": 50}}, headers=auth
        )
        limited = await http.post("/v1/tools/shop.stock/call", json={"arguments": {}}, headers=auth)
        malformed = await http.post(
            "/v1/tools/shop.create_order/call", json={"arguments": {"deliver_at": "tomorrow"}}, headers=auth
        )
    assert json.loads(rejected.json()["upstream_body"]) == REJECTION
    assert limited.headers["retry-after"] == "7" and limited.json()["retry_after"] == 7
    assert "write it like '2026-12-02T10:00:00Z'" in malformed.json()["detail"]


@ERAS
async def test_common_argument_mistakes_say_what_to_send(mcp: Served, era: str) -> None:
    text = await mcp_error(mcp, era, "shop.create_order", {"quantity": "5", "deliver_at": 1})
    assert "quantity: '5' is not of type 'integer'; send 5 without quotes" in text


@ERAS
async def test_an_unknown_tool_gets_the_search_indexs_guesses(mcp: Served, era: str) -> None:
    params = {"name": "shop.orders_new", "arguments": {}}
    if era == "modern":
        response = await mcp.modern("tools/call", params)
    else:
        response = await mcp.legacy(await mcp.initialize(), "tools/call", params)
    error = response.json()["error"]
    assert "no tool named 'shop.orders_new'" in error["message"]
    assert "did you mean 'shop.create_order'" in error["message"]  # 'order': too far apart for difflib


@ERAS
@pytest.mark.parametrize("name", ["mcp__toolbridge__shop_stock", "mcp__toolbridge__shop.stock"])
async def test_a_tool_name_with_a_clients_namespace_in_front_gets_the_tool_it_names(
    mcp: Served, era: str, name: str
) -> None:
    """A client's own prefix ('mcp__<server>__') left nothing close enough in spelling: no suggestion."""
    params = {"name": name, "arguments": {}}
    if era == "modern":
        response = await mcp.modern("tools/call", params)
    else:
        response = await mcp.legacy(await mcp.initialize(), "tools/call", params)
    assert "did you mean 'shop.stock'?" in response.json()["error"]["message"]


async def test_rest_suggests_the_tool_a_namespaced_name_names() -> None:
    async with rest() as (http, auth):
        missing = await http.post("/v1/tools/mcp__toolbridge__shop_stock/call", json={}, headers=auth)
    assert missing.status_code == 404 and missing.json()["suggestions"] == ["shop.stock"]


@ERAS
async def test_a_large_result_is_cut_small_and_says_how_to_page(mcp: Served, era: str) -> None:
    params = {"name": "shop.events", "arguments": {}}
    if era == "modern":
        response = await mcp.modern("tools/call", params)
    else:
        response = await mcp.legacy(await mcp.initialize(), "tools/call", params)
    text = response.json()["result"]["content"][0]["text"]
    full = len(json.dumps(EVENTS, separators=(",", ":")))
    assert full > 500_000 and len(text.encode()) < 66_000  # limits.max_result_bytes: 64 KiB by default
    first, *_, last = text.splitlines()
    for marker in (first, last):  # said before the model reads the part kept, and again at its end
        assert marker.startswith("[toolbridge: result truncated: showing")
        assert "paging arguments (limit, cursor)" in marker


async def test_rest_says_a_result_was_cut_and_keeps_its_full_size() -> None:
    async with rest() as (http, auth):
        cut = await http.post("/v1/tools/shop.events/call", json={"arguments": {}}, headers=auth)
    body = cut.json()
    assert cut.status_code == 200 and body["truncated"] is True and "result" not in body
    assert body["size"] > 500_000 and len(body["text"].encode()) < 66_000
    assert "paging arguments (limit, cursor)" in body["text"].splitlines()[0]


@ERAS
@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({}, "tools/call needs params.name, the name of a tool from tools/list"),
        ({"name": 5}, "tools/call needs params.name, the name of a tool from tools/list"),
        ({"tool": "shop.stock"}, "tools/call needs params.name, the name of a tool from tools/list"),
        ({"name": "shop.stock", "arguments": "x"}, 'params.arguments must be a JSON object: {"field": value'),
        ({"name": "shop.stock", "arguments": [1]}, 'params.arguments must be a JSON object: {"field": value'),
    ],
)
async def test_a_malformed_tools_call_says_what_to_send(
    mcp: Served, era: str, params: dict[str, Any], said: str
) -> None:
    """The SDK's own check of the params answered a bare "Invalid request parameters" (data: "")."""
    if era == "modern":
        routing = {"mcp_name": str(params["name"])} if "name" in params else {}
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {**params, "_meta": ENVELOPE}}
        response = await mcp.post(body, mcp_protocol_version=MODERN, mcp_method="tools/call", **routing)
    else:
        response = await mcp.legacy(await mcp.initialize(), "tools/call", params)
    error = response.json()["error"]
    if era == "modern" and "name" in params and not isinstance(params["name"], str):
        assert error["code"] == -32020 and "mcp-name header" in error["message"]  # checked first, by the SEP
        return
    assert error["code"] == -32602 and said in error["message"]
