"""Federation end to end: the MCP reference servers behind toolbridge's /mcp, seen by real MCP clients.

toolbridge (uvicorn, 127.0.0.1, in a thread) federates server-everything over stdio and over streamable
HTTP, and server-memory over stdio. The official Python client calls every one of their tools through
toolbridge and directly, and the results must be the same; the MCP Inspector CLI lists and calls a
federated tool. Without tests/node these tests skip, unless TOOLBRIDGE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.mcp.conftest import (
    EVERYTHING,
    INSPECTOR_NODE_ARGS,
    NODE,
    NodeHttp,
    everything_stdio,
    free_port,
    memory_stdio,
    require,
)
from toolbridge import Hub
from toolbridge.connectors.mcp import McpConnector
from toolbridge.connectors.mcp._stdio import INHERITED
from toolbridge.surfaces.mcp import McpSurface

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.anyio]

CLOCK = re.compile(
    r"\d{1,2}:\d{2}:\d{2}( [AP]M)?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
TINY_GZIP_INPUT = "data:text/plain;base64,aGVsbG8gdG9vbGJyaWRnZQ=="
EVERYTHING_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"message": "hello"}),
    ("get-annotated-message", {"messageType": "success", "includeImage": True}),
    ("get-env", {}),
    ("get-resource-links", {"count": 4}),
    ("get-resource-reference", {"resourceType": "Blob", "resourceId": 2}),
    ("get-structured-content", {"location": "Chicago"}),
    ("get-sum", {"a": 19, "b": 23}),
    ("get-tiny-image", {}),
    ("gzip-file-as-resource", {"name": "hello.gz", "data": TINY_GZIP_INPUT, "outputType": "resource"}),
    ("toggle-simulated-logging", {}),
    ("toggle-subscriber-updates", {}),
    ("trigger-long-running-operation", {"duration": 0.2, "steps": 2}),
    ("simulate-research-query", {"topic": "pinning"}),
]
MEMORY_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("create_entities", {"entities": [{"name": "tb", "entityType": "project", "observations": ["gateway"]}]}),
    ("create_entities", {"entities": [{"name": "mcp", "entityType": "protocol", "observations": ["json"]}]}),
    ("create_relations", {"relations": [{"from": "tb", "to": "mcp", "relationType": "speaks"}]}),
    ("add_observations", {"observations": [{"entityName": "tb", "contents": ["pins tools"]}]}),
    ("search_nodes", {"query": "gateway"}),
    ("open_nodes", {"names": ["tb", "mcp"]}),
    ("read_graph", {}),
    ("delete_observations", {"deletions": [{"entityName": "tb", "observations": ["pins tools"]}]}),
    ("delete_relations", {"relations": [{"from": "tb", "to": "mcp", "relationType": "speaks"}]}),
    ("delete_entities", {"entityNames": ["mcp"]}),
    ("read_graph", {}),
]


class Served:
    def __init__(self, url: str) -> None:
        self.url = url
        self.key = ""
        self.hub: Hub | None = None


@contextmanager
def toolbridge_serving(connectors: list[McpConnector]) -> Iterator[Served]:
    sock = loopback_socket()
    served = Served(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
    hub = Hub()
    for connector in connectors:
        hub.add_connector(connector)
    surface = McpSurface(hub)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with hub, surface:
            served.key = await hub.agents.create("agent", ["*"])
            served.hub = hub
            yield

    with uvicorn_thread(
        Starlette(routes=surface.routes(), lifespan=lifespan), sock, start_timeout=patience(60)
    ):
        yield served


@asynccontextmanager
async def through_toolbridge(served: Served) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {served.key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=patience(60)) as http,
        Client(streamable_http_client(served.url, http_client=http)) as client,
    ):
        yield client


def comparable(result: Any) -> dict[str, Any]:
    """What a client sees of a result, without ``_meta`` (toolbridge adds its request id there)."""
    dumped: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    dumped.pop("_meta", None)
    return dumped


async def call_all(client: Client, prefix: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    results = []
    for name, arguments in calls:
        results.append(comparable(await client.call_tool(prefix + name, arguments)))
    return results


@pytest.fixture
def everything_http() -> Iterator[NodeHttp]:
    require(NODE, EVERYTHING)
    served = NodeHttp(free_port())
    served.start()
    try:
        yield served
    finally:
        served.stop()


def stdio_params(server: Any) -> StdioServerParameters:
    """The same process toolbridge starts, with the same environment (the SDK adds a few variables)."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED} | dict(server.env)
    return StdioServerParameters(command=server.command, args=list(server.args), env=env)


async def test_every_tool_is_callable_through_toolbridge_with_identical_results(
    everything_http: NodeHttp, tmp_path: Path
) -> None:
    (tmp_path / "direct").mkdir()
    (tmp_path / "proxied").mkdir()
    connectors = [
        McpConnector("ev", everything_stdio()),
        McpConnector("evhttp", everything_http.server),
        McpConnector("memory", memory_stdio(tmp_path / "proxied")),
    ]
    with toolbridge_serving(connectors) as served:
        async with through_toolbridge(served) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            expected = {f"{p}.{n}" for p in ("ev", "evhttp") for n, _ in EVERYTHING_CALLS}
            expected |= {f"memory.{n}" for n, _ in MEMORY_CALLS}
            assert expected <= listed, expected - listed
            proxied_stdio = await call_all(client, "ev.", EVERYTHING_CALLS)
            proxied_http = await call_all(client, "evhttp.", EVERYTHING_CALLS)
            proxied_memory = await call_all(client, "memory.", MEMORY_CALLS)

    async with Client(stdio_params(everything_stdio())) as direct:
        direct_stdio = await call_all(direct, "", EVERYTHING_CALLS)
    everything_http.restart()  # a fresh server, as toolbridge's session found it
    async with Client(everything_http.url) as direct:
        direct_http = await call_all(direct, "", EVERYTHING_CALLS)
    async with Client(stdio_params(memory_stdio(tmp_path / "direct"))) as direct:
        direct_memory = await call_all(direct, "", MEMORY_CALLS)

    for (name, _), proxied, direct_result in zip(EVERYTHING_CALLS, proxied_stdio, direct_stdio, strict=True):
        assert _same(proxied, namespaced(direct_result, "ev")), (name, proxied, direct_result)
    for (name, _), proxied, direct_result in zip(EVERYTHING_CALLS, proxied_http, direct_http, strict=True):
        assert _same(proxied, namespaced(direct_result, "evhttp")), (name, proxied, direct_result)
    assert proxied_memory == direct_memory


def namespaced(result: Any, connector: str) -> Any:
    """``result`` with every resource URI as toolbridge documents it shows them (``toolbridge://connector/URI``)."""
    if isinstance(result, dict):
        return {
            k: f"toolbridge://{connector}/{v}"
            if k == "uri" and isinstance(v, str)
            else namespaced(v, connector)
            for k, v in result.items()
        }
    if isinstance(result, list):
        return [namespaced(v, connector) for v in result]
    return result


def _same(proxied: dict[str, Any], direct: dict[str, Any]) -> bool:
    """Equal results; a tool that fails directly must fail through toolbridge too (with its own text)."""
    if direct.get("isError"):
        return bool(proxied.get("isError"))
    return _parsed(proxied) == _parsed(direct)


def _parsed(result: dict[str, Any]) -> Any:
    """Text that is a JSON object compared as data (get-env's variables come in process order), and the
    clock times and session ids server-everything writes into its answers masked."""
    content = []
    for item in result.get("content", []):
        text = item.get("text", "") if item.get("type") == "text" else ""
        resource = item.get("resource") or {}
        if "blob" in resource:
            resource = {**resource, "blob": base64.b64decode(resource["blob"]).decode(errors="replace")}
            item = {**item, "resource": resource}
        content.append(json.loads(text) if text.startswith("{") else item)
    return json.loads(CLOCK.sub("<time>", json.dumps({**result, "content": content})))


def test_inspector_lists_and_calls_a_federated_tool(tmp_path: Path) -> None:
    from tests.e2e.test_mcp_node import INSPECTOR, node

    require(NODE, INSPECTOR, EVERYTHING)
    with toolbridge_serving([McpConnector("everything", everything_stdio())]) as served:
        auth = ["--header", f"Authorization: Bearer {served.key}"]
        base = [INSPECTOR, *INSPECTOR_NODE_ARGS, "--cli", served.url, "--transport", "http", *auth]
        listed = node(*base, "--method", "tools/list")
        assert listed.returncode == 0, listed.stderr
        assert "everything.get-sum" in [t["name"] for t in json.loads(listed.stdout)["tools"]]
        called = node(
            *base,
            "--method",
            "tools/call",
            "--tool-name",
            "everything.get-sum",
            "--tool-arg",
            "a=40",
            "--tool-arg",
            "b=2",
        )
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["content"] == [
            {"type": "text", "text": "The sum of 40 and 2 is 42."}
        ]


async def test_prompts_and_resources_are_federated() -> None:
    with toolbridge_serving([McpConnector("ev", everything_stdio())]) as served:
        async with through_toolbridge(served) as client:
            prompts = (await client.list_prompts()).prompts
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            simple = next(p for p in prompts if not any(a.required for a in p.arguments or []))
            proxied_prompt = comparable(await client.get_prompt(simple.name))
            proxied_read = comparable(await client.read_resource(resources[0].uri))
    async with Client(stdio_params(everything_stdio())) as direct:
        direct_prompts = (await direct.list_prompts()).prompts
        direct_resources = (await direct.list_resources()).resources
        direct_prompt = comparable(await direct.get_prompt(simple.name.removeprefix("ev.")))
        direct_read = comparable(
            await direct.read_resource(resources[0].uri.removeprefix("toolbridge://ev/"))
        )
    assert sorted(p.name for p in prompts) == sorted(f"ev.{p.name}" for p in direct_prompts)
    assert [r.uri for r in resources] == [f"toolbridge://ev/{r.uri}" for r in direct_resources]
    assert templates, "server-everything declares resource templates"
    assert all(t.uri_template.startswith("toolbridge://ev/") for t in templates)
    assert proxied_prompt == namespaced(direct_prompt, "ev")
    assert _parsed(proxied_read) == _parsed(namespaced(direct_read, "ev"))
