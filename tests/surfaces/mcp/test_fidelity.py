"""What an upstream MCP server answers reaches the agent unchanged: direct and proxied, field by field.

The upstream is fidelity_server.py (the official SDK's MCPServer) over streamable HTTP, in its own
process; toolbridge federates it (stateless era, and the 2025-11-25 handshake over stdio) and serves
agents over ASGI. Each test sends the same raw JSON-RPC request to the upstream and through toolbridge
and compares the answers; the only differences allowed are the documented ones: the tool's catalog
name, toolbridge's request id added to ``_meta``, and toolbridge's own ``serverInfo`` in ``_meta``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.connectors.mcp.conftest import python_http
from toolbridge import Hub, Limits, Principal
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer, ToolRules
from toolbridge.errors import ConfigurationError, InputRequired, UpstreamRpcError, UpstreamToolError

from .conftest import MODERN, Served, serve

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).with_name("fidelity_server.py")
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
REQUEST_ID = "toolbridge/request-id"
ASKS = {"elicitation": {}, "sampling": {}, "roots": {}}


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    """fidelity_server.py over streamable HTTP on 127.0.0.1, for the whole module."""
    with python_http(SERVER) as url:
        yield url


def envelope(capabilities: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": dict(capabilities),
        "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
    }


def request(
    method: str, params: Mapping[str, Any], capabilities: Mapping[str, Any]
) -> tuple[bytes, dict[str, str]]:
    body = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": method,
        "params": {**params, "_meta": {**params.get("_meta", {}), **envelope(capabilities)}},
    }
    headers = {"mcp-protocol-version": MODERN, "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = str(params["name"])
    return httpx2.Request("POST", "http://x", json=body).content, headers


class Both:
    """Sends the same stateless-era request to the upstream directly and through toolbridge."""

    def __init__(self, served: Served, url: str, prefix: str) -> None:
        self.served, self.url, self.prefix = served, url, prefix

    async def direct(
        self, method: str, params: Mapping[str, Any], capabilities: Mapping[str, Any] = ASKS
    ) -> httpx2.Response:
        body, headers = request(method, params, capabilities)
        headers |= {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        async with httpx2.AsyncClient() as http:
            return await http.post(self.url, content=body, headers=headers)

    async def proxied(
        self, method: str, params: Mapping[str, Any], capabilities: Mapping[str, Any] = ASKS
    ) -> httpx2.Response:
        named = {**params, "name": f"{self.prefix}.{params['name']}"} if "name" in params else params
        body, headers = request(method, named, capabilities)
        return await self.served.post(body, **{k.replace("-", "_"): v for k, v in headers.items()})


@asynccontextmanager
async def both(url: str, server: HttpServer | StdioServer | None = None) -> AsyncIterator[Both]:
    hub = Hub()
    hub.add_connector(McpConnector("fid", server or HttpServer(url)))
    async with serve(hub) as served:
        yield Both(served, url, "fid")


def comparable(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC answer without what toolbridge documents it changes (its request id, its serverInfo)."""
    message = dict(response.json())
    message.pop("id")
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("_meta"), dict):
        meta = {k: v for k, v in result["_meta"].items() if k not in (SERVER_INFO, REQUEST_ID)}
        message["result"] = {**result, "_meta": meta}
        if not meta:
            del message["result"]["_meta"]
    return message


async def test_an_input_required_result_is_relayed_and_its_answers_go_back_upstream(
    upstream_url: str,
) -> None:
    async with both(upstream_url) as via:
        direct = await via.direct("tools/call", {"name": "ask_name", "arguments": {}})
        first = await via.proxied("tools/call", {"name": "ask_name", "arguments": {}})
        assert first.status_code == direct.status_code == 200
        asked, expected = comparable(first)["result"], comparable(direct)["result"]
        assert asked["resultType"] == "input_required"
        assert "isError" not in asked
        assert asked["inputRequests"] == expected["inputRequests"]
        assert {k for k in asked if k != "requestState"} == {k for k in expected if k != "requestState"}
        answers = {"name": {"action": "accept", "content": {"name": "Ada"}}}
        second = await via.proxied(
            "tools/call",
            {
                "name": "ask_name",
                "arguments": {},
                "inputResponses": answers,
                "requestState": asked["requestState"],
            },
        )
        result = second.json()["result"]
        assert (result["resultType"], result["isError"]) == ("complete", False)
        assert result["content"] == [{"type": "text", "text": "Hello, Ada!"}]


async def test_a_prompt_that_asks_for_input_is_not_passed_off_as_complete(upstream_url: str) -> None:
    async with both(upstream_url) as via:
        direct = await via.direct("prompts/get", {"name": "signed"})
        first = await via.proxied("prompts/get", {"name": "signed"})
        assert comparable(first) == comparable(direct)
        assert first.json()["result"]["resultType"] == "input_required"
        answers = {"name": {"action": "accept", "content": {"name": "Ada"}}}
        second = await via.proxied("prompts/get", {"name": "signed", "inputResponses": answers})
        direct_second = await via.direct("prompts/get", {"name": "signed", "inputResponses": answers})
        assert comparable(second) == comparable(direct_second)
        assert second.json()["result"]["messages"][0]["content"]["text"] == "Write a letter signed Ada."


async def test_input_requests_an_agent_cannot_answer_are_a_typed_error_not_an_empty_success(
    upstream_url: str,
) -> None:
    async with both(upstream_url) as via:
        no_elicitation = await via.proxied(
            "tools/call", {"name": "ask_everything", "arguments": {}}, {"roots": {}}
        )
        result = no_elicitation.json()["result"]
        assert result["isError"] is True
        problem = result["_meta"]["toolbridge/problem"]
        assert problem["code"] == "input_required"
        assert "elicitation, sampling" in problem["detail"]
        session = await via.served.initialize()  # a 2025-11-25 client cannot answer input requests at all
        legacy = (
            await via.served.legacy(session, "tools/call", {"name": "fid.ask_name", "arguments": {}})
        ).json()
        assert legacy["result"]["isError"] is True
        assert legacy["result"]["_meta"]["toolbridge/problem"]["code"] == "input_required"
        with pytest.raises(InputRequired, match="elicitation/create"):  # nor can REST or Python callers
            await via.served.hub.call(Principal.local(), "fid.ask_name", {})
        everything = await via.proxied("tools/call", {"name": "ask_everything", "arguments": {}})
        assert everything.json()["result"]["resultType"] == "input_required"


async def test_the_agents_capabilities_reach_the_upstream(upstream_url: str) -> None:
    async with both(upstream_url) as via:
        for capabilities in ({"sampling": {}}, {}):
            direct = await via.direct("tools/call", {"name": "needs_sampling", "arguments": {}}, capabilities)
            proxied = await via.proxied(
                "tools/call", {"name": "needs_sampling", "arguments": {}}, capabilities
            )
            assert (proxied.status_code, comparable(proxied)) == (direct.status_code, comparable(direct))


@pytest.mark.parametrize("era", ["2026-07-28", "2025-11-25"])
async def test_upstream_errors_keep_their_code_message_data_and_http_status(
    upstream_url: str, era: str
) -> None:
    server = (
        HttpServer(upstream_url)
        if era == MODERN
        else StdioServer(sys.executable, (str(SERVER),), protocol=era)
    )
    async with both(upstream_url, server) as via:
        direct = await via.direct("tools/call", {"name": "refuse", "arguments": {"field": "colour"}})
        proxied = await via.proxied("tools/call", {"name": "refuse", "arguments": {"field": "colour"}})
        assert proxied.status_code == direct.status_code == 400
        assert comparable(proxied) == comparable(direct)
        assert proxied.json()["error"] == {
            "code": -32602,
            "message": "colour is not acceptable here",
            "data": {"field": "colour", "allowed": ["a", "b"]},
        }
        session = await via.served.initialize()  # a handshake-era agent gets the same error
        legacy = await via.served.legacy(
            session, "tools/call", {"name": "fid.refuse", "arguments": {"field": "colour"}}
        )
        assert legacy.json()["error"] == proxied.json()["error"]
        with pytest.raises(UpstreamRpcError) as raised:  # Python and REST callers: the same, in the problem
            await via.served.hub.call(Principal.local(), "fid.refuse", {"field": "colour"})
        assert raised.value.extra()["jsonrpc_error"] == proxied.json()["error"]


@pytest.mark.parametrize("era", ["2026-07-28", "2025-11-25"])
async def test_results_and_error_results_are_relayed_whole(upstream_url: str, era: str) -> None:
    server = (
        HttpServer(upstream_url)
        if era == MODERN
        else StdioServer(sys.executable, (str(SERVER),), protocol=era)
    )
    async with both(upstream_url, server) as via:
        for tool in ("fail_rich", "with_meta"):
            direct = await via.direct("tools/call", {"name": tool, "arguments": {}})
            proxied = await via.proxied("tools/call", {"name": tool, "arguments": {}})
            assert comparable(proxied) == comparable(direct)
            assert proxied.json()["result"]["_meta"][REQUEST_ID]
        rich = (await via.proxied("tools/call", {"name": "fail_rich", "arguments": {}})).json()["result"]
        assert rich["isError"] is True
        assert [c["type"] for c in rich["content"]] == ["text", "image"]
        assert len(rich["content"][0]["text"]) > 2_000
        assert rich["structuredContent"] == {"failed": "everything", "count": 3}
        assert rich["_meta"]["example.com/trace"] == "trace-42"
        with pytest.raises(UpstreamToolError, match="long failure report"):
            await via.served.hub.call(Principal.local(), "fid.fail_rich", {})
        value = (await via.served.hub.call(Principal.local(), "fid.with_meta", {})).value
        assert value["_meta"] == {"example.com/cost": 7}


async def test_an_error_result_over_the_size_cap_is_cut_like_any_result(upstream_url: str) -> None:
    hub = Hub(limits=Limits(max_result_bytes=1_000))
    hub.add_connector(McpConnector("fid", HttpServer(upstream_url)))
    async with serve(hub) as served:
        via = Both(served, upstream_url, "fid")
        rich = (await via.proxied("tools/call", {"name": "fail_rich", "arguments": {}})).json()["result"]
    assert rich["isError"] is True
    assert [c["type"] for c in rich["content"]] == ["text"]
    assert "result truncated" in rich["content"][0]["text"]
    assert rich["_meta"]["toolbridge/problem"]["code"] == "tool_failed"


async def test_two_upstreams_with_the_same_resource_uris_are_told_apart() -> None:
    hub = Hub()
    for name, note in (("one", "first"), ("two", "second")):
        hub.add_connector(McpConnector(name, StdioServer(sys.executable, (str(SERVER),), env={"NOTE": note})))
    async with serve(hub) as served:
        listed = (await served.modern("resources/list")).json()["result"]["resources"]
        assert sorted(r["uri"] for r in listed) == [
            "toolbridge://one/demo://note",
            "toolbridge://two/demo://note",
        ]
        templates = (await served.modern("resources/templates/list")).json()["result"]["resourceTemplates"]
        assert sorted(t["uriTemplate"] for t in templates) == [
            "toolbridge://one/demo://echo/{word}",
            "toolbridge://two/demo://echo/{word}",
        ]
        read: dict[str, list[dict[str, Any]]] = {}
        for uri in (
            "toolbridge://one/demo://note",
            "toolbridge://two/demo://note",
            "toolbridge://two/demo://echo/hi",
        ):
            answer = await served.modern("resources/read", {"uri": uri}, mcp_name=uri)
            read[uri] = answer.json()["result"]["contents"]
    assert [(c["uri"], c["text"]) for contents in read.values() for c in contents] == [
        ("toolbridge://one/demo://note", "first"),
        ("toolbridge://two/demo://note", "second"),
        ("toolbridge://two/demo://echo/hi", "second: hi"),
    ]


async def test_upstream_annotations_can_only_make_a_tool_more_careful(upstream_url: str) -> None:
    hub = Hub()
    hub.add_connector(McpConnector("fid", HttpServer(upstream_url), rules=ToolRules(read_only=("wipe",))))
    async with serve(hub) as served:
        tools = {t["name"]: t for t in (await served.modern("tools/list")).json()["result"]["tools"]}
    wipe, peek = tools["fid.wipe"]["annotations"], tools["fid.peek"]["annotations"]
    assert (wipe["destructiveHint"], wipe["readOnlyHint"], wipe["openWorldHint"]) == (True, False, False)
    assert (peek["readOnlyHint"], peek["destructiveHint"]) == (
        False,
        False,
    )  # only the config makes it read-only


async def test_an_idempotency_key_spans_the_rounds_of_an_input_required_call(upstream_url: str) -> None:
    async with both(upstream_url) as via:
        key = {"toolbridge/idempotency-key": "order-7"}
        first = await via.proxied("tools/call", {"name": "ask_name", "arguments": {}, "_meta": key})
        asked = first.json()["result"]
        assert asked["resultType"] == "input_required"
        answers = {"name": {"action": "accept", "content": {"name": "Ada"}}}
        retry = {"inputResponses": answers, "requestState": asked["requestState"], "_meta": key}
        second = await via.proxied("tools/call", {"name": "ask_name", "arguments": {}, **retry})
        again = await via.proxied("tools/call", {"name": "ask_name", "arguments": {}, **retry})
    assert second.json()["result"]["content"] == [{"type": "text", "text": "Hello, Ada!"}]
    assert again.json()["result"]["content"] == second.json()["result"]["content"]  # the round replayed


async def test_an_upstream_mounted_without_prefix_keeps_its_names_and_uris(upstream_url: str) -> None:
    hub = Hub()
    hub.add_connector(McpConnector("fid", HttpServer(upstream_url), prefixed=False))
    async with serve(hub) as served:
        via = Both(served, upstream_url, "")
        listed = (await served.modern("tools/list")).json()["result"]["tools"]
        direct = (await via.direct("tools/list", {})).json()["result"]["tools"]
        assert sorted(t["name"] for t in listed) == sorted(t["name"] for t in direct)
        proxied = await served.modern("tools/call", {"name": "refuse", "arguments": {"field": "colour"}})
        straight = await via.direct("tools/call", {"name": "refuse", "arguments": {"field": "colour"}})
        assert comparable(proxied) == comparable(straight)
        resources = (await served.modern("resources/list")).json()["result"]["resources"]
        assert [r["uri"] for r in resources] == ["demo://note"]
        read = await served.modern("resources/read", {"uri": "demo://note"}, mcp_name="demo://note")
        assert read.json()["result"]["contents"][0]["uri"] == "demo://note"
        prompts = (await served.modern("prompts/list")).json()["result"]["prompts"]
        assert [p["name"] for p in prompts] == ["signed"]
        await hub.audit.flush()
        records = await hub.audit.tail(10)
    assert "fid.refuse" in {r.entry.tool for r in records}  # the catalog, scopes and audit keep the prefix


async def test_an_unprefixed_upstreams_tools_are_suggested_by_the_names_mcp_clients_see(
    upstream_url: str,
) -> None:
    """A misspelt name got "did you mean 'fid.refuse'?" beside a tools/list that says 'refuse'."""
    hub = Hub()
    hub.add_connector(McpConnector("fid", HttpServer(upstream_url), prefixed=False))
    async with serve(hub) as served:
        answer = await served.modern("tools/call", {"name": "refuze", "arguments": {}})
    error = answer.json()["error"]
    assert error["code"] == -32602 and "did you mean 'refuse'?" in error["message"], error
    assert error["data"]["suggestions"] == ["refuse"], error


async def test_two_unprefixed_upstreams_with_the_same_tool_names_refuse_to_start() -> None:
    hub = Hub()
    for name in ("one", "two"):
        hub.add_connector(McpConnector(name, StdioServer(sys.executable, (str(SERVER),)), prefixed=False))
    with pytest.raises(ConfigurationError, match="are both called 'ask_everything' over MCP"):
        async with serve(hub):
            pass


async def test_an_upstream_refusing_a_subscription_is_relayed_with_its_code(upstream_url: str) -> None:
    handshake = HttpServer(upstream_url, protocol="2025-11-25")  # it serves no resources/subscribe
    async with both(upstream_url, handshake) as via:
        session = await via.served.initialize()
        uri = "toolbridge://fid/demo://note"
        refused = (await via.served.legacy(session, "resources/subscribe", {"uri": uri})).json()
        direct = (await via.direct("resources/subscribe", {"uri": "demo://note"})).json()
    assert refused["error"]["code"] == direct["error"]["code"] == -32601
