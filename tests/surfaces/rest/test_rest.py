"""The REST surface, in-process over ASGI (httpx2.ASGITransport), against a real hub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from toolbridge import Client, Hub, InvalidArguments, ToolNotFound
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.errors import AuthenticationError, NotFound
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio
BASE = "http://toolbridge.test"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
}


@dataclass
class Served:
    hub: Hub
    http: httpx2.AsyncClient
    writer_key: str
    reader_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.writer_key}"}


def make_hub() -> Hub:
    hub = Hub(agents={"writer": ["notes.*"], "reader": ["*:read"]})

    @hub.tool(connector="notes", read_only=True)
    def count(text: str) -> int:
        """Count words."""
        return len(text.split())

    @hub.tool(connector="notes")
    async def add(text: str) -> dict[str, str]:
        """Add a note."""
        return {"added": text}

    return hub


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    hub = make_hub()
    app = create_app(hub, max_body_bytes=10_000)
    async with app.router.lifespan_context(app):
        writer, reader = await hub.agents.create("writer"), await hub.agents.create("reader")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=BASE) as http:
            yield Served(hub, http, writer, reader)


async def test_list_tools_is_per_agent(served: Served) -> None:
    writer = await served.http.get("/v1/tools", headers=served.auth())
    reader = await served.http.get("/v1/tools", headers=served.auth(served.reader_key))
    assert [t["name"] for t in writer.json()["tools"]] == ["notes.add", "notes.count"]
    assert [t["name"] for t in reader.json()["tools"]] == ["notes.count"]
    count = reader.json()["tools"][0]
    assert count["annotations"]["read_only"] is True
    assert count["input_schema"]["required"] == ["text"]


async def test_call_and_call_log(served: Served) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call",
        json={"arguments": {"text": "hi"}},
        headers={**served.auth(), "X-Request-Id": "req-123"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == {"added": "hi"} and body["request_id"] == "req-123" and not body["truncated"]
    await served.hub.audit.flush()
    calls = (await served.http.get("/v1/calls", headers=served.auth())).json()["calls"]
    assert [(c["tool"], c["outcome"], c["request_id"]) for c in calls] == [("notes.add", "ok", "req-123")]
    reader_calls = (await served.http.get("/v1/calls", headers=served.auth(served.reader_key))).json()
    assert reader_calls["calls"] == []


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no API key was sent"),
        ({"Authorization": "Bearer tb_nope"}, "not valid"),
        ({"Authorization": "Basic abc"}, "no API key was sent"),
    ],
)
async def test_missing_or_bad_key_is_401_problem(
    served: Served, headers: dict[str, str], detail: str
) -> None:
    response = await served.http.get("/v1/tools", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert detail in response.json()["detail"]


async def test_revoked_key_is_refused(served: Served) -> None:
    await served.hub.agents.revoke("reader")
    response = await served.http.get("/v1/tools", headers=served.auth(served.reader_key))
    assert response.status_code == 401


async def test_x_api_key_header_works(served: Served) -> None:
    response = await served.http.get("/v1/tools", headers={"X-API-Key": served.reader_key})
    assert response.status_code == 200


async def test_a_tool_outside_the_scopes_is_404_like_the_catalog_says(served: Served) -> None:
    reader = served.auth(served.reader_key)
    call = await served.http.post(
        "/v1/tools/notes.add/call", json={"arguments": {"text": "x"}}, headers=reader
    )
    listed = await served.http.get("/v1/tools/notes.add", headers=reader)
    missing = await served.http.post("/v1/tools/notes.zzz/call", json={"arguments": {}}, headers=reader)
    assert call.status_code == listed.status_code == missing.status_code == 404
    assert call.json()["code"] == "tool_not_found" and "notes.add" not in call.json()["suggestions"]
    # guesses depend on the name asked for and on the tools the caller may use, never on hidden ones
    masked = {"detail": "", "instance": "", "tool": "", "suggestions": [], "hint": ""}
    assert {**call.json(), **masked} == {**missing.json(), **masked}
    typo = await served.http.post("/v1/tools/notes.ad/call", json={}, headers=reader)
    assert "notes.add" not in typo.json()["suggestions"]  # notes.add exists, but not for this agent


async def test_unknown_tool_is_404_with_suggestions(served: Served) -> None:
    response = await served.http.post("/v1/tools/notes.ad/call", json={}, headers=served.auth())
    assert response.status_code == 404
    assert response.json()["suggestions"] == ["notes.add"]
    assert "did you mean 'notes.add'?" in response.json()["hint"]


async def test_an_unknown_tool_gets_the_search_index_guesses_over_rest(served: Served) -> None:
    """No name is close in spelling to 'notes.text_words'; the index finds what it meant, as over MCP
    (REST answered suggestions [] and "list the available tools")."""
    for response in (
        await served.http.post("/v1/tools/notes.text_words/call", json={}, headers=served.auth()),
        await served.http.get("/v1/tools/notes.text_words", headers=served.auth()),
    ):
        assert response.status_code == 404
        assert response.json()["suggestions"][0] == "notes.count", response.json()
    hidden = await served.http.get("/v1/tools/notes.adding_note", headers=served.auth(served.reader_key))
    assert "notes.add" not in hidden.json()["suggestions"]  # only what the caller may use is guessed


async def test_invalid_arguments_are_422_with_fields(served: Served) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call", json={"arguments": {"text": 5, "x": 1}}, headers=served.auth()
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"(arguments)", "text"}


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"args": {}}', "'args', which is not read"),
        (b'{"arguments": [1]}', "must be a JSON object"),
        (b"[]", 'the keys "arguments"'),
    ],
)
async def test_malformed_bodies_are_400(served: Served, content: bytes, detail: str) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call",
        content=content,
        headers={**served.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]


async def test_body_over_limit_is_413(served: Served) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call", json={"arguments": {"text": "x" * 20_000}}, headers=served.auth()
    )
    assert response.status_code == 413
    assert response.json()["limit"] == 10_000


async def test_chunked_body_over_limit_is_413(served: Served) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"arguments": {"text": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}}'

    response = await served.http.post("/v1/tools/notes.add/call", content=chunks(), headers=served.auth())
    assert response.status_code == 413


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\x01key"])
async def test_bad_idempotency_keys_are_400(served: Served, key: str) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call",
        json={"arguments": {"text": "x"}},
        headers={**served.auth(), "Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]


async def test_an_idempotency_key_in_the_body_is_refused_pointing_at_the_header(served: Served) -> None:
    response = await served.http.post(
        "/v1/tools/notes.add/call",
        json={"arguments": {"text": "x"}, "idempotency_key": "k1"},
        headers=served.auth(),
    )
    assert response.status_code == 400
    assert response.json()["hint"] == (
        "send the idempotency key in the Idempotency-Key header, not in the body"
    )


@pytest.mark.parametrize(
    ("body", "detail", "hint"),
    [
        ({"text": "x"}, "has 'text' beside \"arguments\"", 'send {"arguments": {"text": …}}'),
        ({"arguments": {}, "text": "x"}, "has 'text' beside", 'send {"arguments": {"text": …}}'),
        ({"args": {"text": "x"}}, "has 'args', which is not read", "did you mean 'arguments'?"),
        ({"arguments": {"text": "x"}, "conection": "w"}, "'conection'", "did you mean 'connection'?"),
        ([{"text": "x"}], "must be an object", 'send {"arguments": {"name": value}}'),
    ],
)
async def test_a_call_body_of_the_wrong_shape_says_where_its_keys_go(
    served: Served, body: object, detail: str, hint: str
) -> None:
    """Every such body was told the same: 'must be an object with the keys "arguments"…', whether the agent
    sent its arguments unwrapped, wrote 'args' or misspelt 'connection'."""
    response = await served.http.post("/v1/tools/notes.add/call", json=body, headers=served.auth())
    assert response.status_code == 400
    problem = response.json()
    assert detail in problem["detail"] and hint in problem["hint"], problem


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("/v1/calls?cursor=c2", "GET /v1/calls takes limit, tool"),
        ("/v1/calls?tools=notes.add", "did you mean 'tool'?; GET /v1/calls takes limit, tool"),
        ("/v1/outbox?status=queued", "did you mean 'state'?; GET /v1/outbox takes state, limit"),
        ("/v1/tools/notes.add?verbose=1", "GET /v1/tools/{name} takes no query parameters"),
    ],
)
async def test_a_query_parameter_a_route_does_not_take_is_refused_naming_those_it_does(
    served: Served, url: str, hint: str
) -> None:
    """Ignored, a misspelt filter answered as no filter, and a cursor where there is no paging answered the
    first page again, to an agent that then paged for ever."""
    response = await served.http.get(url, headers=served.auth())
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["detail"].startswith("unknown query parameter") and problem["hint"] == hint, problem
    assert (
        await served.http.get("/v1/calls?tool=notes.add&limit=2", headers=served.auth())
    ).status_code == 200


@pytest.mark.parametrize("name", ["toolbridge.search_tools", "toolbridge.describe_tool", "call_tool"])
async def test_an_mcp_meta_tool_asked_of_rest_is_pointed_at_the_rest_routes(
    served: Served, name: str
) -> None:
    """'no tool named 'toolbridge.search_tools'' with 'list the available tools with tools/list …'."""
    response = await served.http.post(f"/v1/tools/{name}/call", json={"arguments": {}}, headers=served.auth())
    assert response.status_code == 404
    assert "GET /v1/tools?q=<the task in words> searches" in response.json()["hint"]
    described = await served.http.get(f"/v1/tools/{name}", headers=served.auth())
    assert described.status_code == 404 and "POST /v1/tools/{name}/call calls it" in described.json()["hint"]


async def test_openapi_document_and_unknown_route(served: Served) -> None:
    spec = (await served.http.get("/v1/openapi.json")).json()
    assert {"/tools", "/tools/{name}", "/tools/{name}/call", "/calls"} <= set(spec["paths"])
    missing = await served.http.get("/v1/nothing", headers=served.auth())
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_python_client_against_rest(served: Served) -> None:
    async with Client(BASE, api_key=served.writer_key, http_client=served.http) as client:
        tools = await client.list_tools()
        assert [t.name for t in tools] == ["notes.add", "notes.count"]
        assert tools[1].annotations.read_only
        found = await client.search_tools("count the words", read_only=True)
        assert found["tools"][0]["name"] == "notes.count" and "good_match" not in found
        nothing = await client.search_tools("book a flight", limit=1)
        assert nothing["good_match"] is False and nothing["connectors"][0]["name"] == "notes"
        with pytest.raises(NotFound, match="no connector 'note'"):
            await client.search_tools("add", connector="note")
        result = await client.call("notes.count", {"text": "a b c"})
        assert (result.value, result.text) == (3, "3")
        with pytest.raises(ToolNotFound) as info:
            await client.call("notes.cnt", {})
        assert info.value.suggestions == ["notes.count"]
        with pytest.raises(InvalidArguments) as invalid:
            await client.call("notes.count", {"text": 1})
        assert invalid.value.errors[0]["field"] == "text"
    async with Client(BASE, api_key=served.reader_key, http_client=served.http) as reader:
        with pytest.raises(ToolNotFound):
            await reader.call("notes.add", {"text": "x"})
    async with Client(BASE, api_key="tb_bad", http_client=served.http) as nobody:
        with pytest.raises(AuthenticationError):
            await nobody.list_tools()
    assert not served.http.is_closed  # the client closes only what it created


async def test_connector_health_only_for_connectors_the_caller_can_use() -> None:
    hub = make_hub()

    @hub.tool(connector="secret-crm", read_only=True)
    def lookup(name: str) -> str:
        """Look a customer up."""
        return name

    app = create_app(hub)
    seen: dict[str, list[str]] = {}
    async with app.router.lifespan_context(app):
        agents = {"writer": None, "ops": ["*"]}
        keys = {name: await hub.agents.create(name, scopes or ()) for name, scopes in agents.items()}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
            for name, key in keys.items():
                response = await http.get("/v1/health/connectors", headers={"Authorization": f"Bearer {key}"})
                seen[name] = [c["connector"] for c in response.json()["connectors"]]
    assert seen == {"writer": ["notes"], "ops": ["notes", "secret-crm"]}


async def test_health(served: Served) -> None:
    response = await served.http.get("/healthz")
    assert response.json() == {"status": "ok", "tools": 2}


async def test_search_tools_with_q(served: Served) -> None:
    found = await served.http.get("/v1/tools", params={"q": "count the words"}, headers=served.auth())
    assert found.status_code == 200
    tools = found.json()["tools"]
    assert tools[0]["name"] == "notes.count" and tools[0]["score"] > 0 and tools[0]["read_only"] is True
    writes = await served.http.get(
        "/v1/tools", params={"q": "note", "read_only": "false"}, headers=served.auth()
    )
    assert [t["name"] for t in writes.json()["tools"]] == ["notes.add"]
    nothing = await served.http.get("/v1/tools", params={"q": "book a flight"}, headers=served.auth())
    assert nothing.json()["good_match"] is False and nothing.json()["connectors"][0]["name"] == "notes"
    reader = await served.http.get(
        "/v1/tools", params={"q": "add a note"}, headers=served.auth(served.reader_key)
    )
    assert "notes.add" not in [t["name"] for t in reader.json()["tools"]]  # outside the reader's scopes


async def test_the_listing_takes_only_its_own_parameters(served: Served) -> None:
    """``?query=`` for ``?q=`` answered with the whole catalog instead of a search, silently."""
    for params, detail, hint in (
        ({"query": "count"}, "unknown query parameter 'query'", "did you mean 'q'?"),
        ({"q": "count", "top": "3"}, "unknown query parameter 'top'", "takes q, limit, connector, read_only"),
    ):
        refused = await served.http.get("/v1/tools", params=params, headers=served.auth())
        assert refused.status_code == 400, params
        assert refused.json()["detail"].startswith(detail) and hint in refused.json()["hint"]


async def test_the_listing_filters_by_connector_and_read_only(served: Served) -> None:
    reads = await served.http.get("/v1/tools", params={"read_only": "true"}, headers=served.auth())
    assert [t["name"] for t in reads.json()["tools"]] == ["notes.count"]
    other = await served.http.get("/v1/tools", params={"connector": "mail"}, headers=served.auth())
    assert other.json()["tools"] == []
    first = await served.http.get("/v1/tools", params={"limit": "1"}, headers=served.auth())
    assert [t["name"] for t in first.json()["tools"]] == ["notes.add"]


async def test_a_search_in_an_unknown_connector_is_404_and_a_too_long_one_400(served: Served) -> None:
    """Statuses the REST document declares (schemathesis checks them): 404 for a connector the caller
    has no tool of, 400 for a query over the document's maxLength."""
    typo = await served.http.get("/v1/tools", params={"q": "add", "connector": "note"}, headers=served.auth())
    detail = "no connector 'note' among the tools you can use"
    assert typo.status_code == 404 and typo.json()["detail"] == detail
    assert typo.json()["hint"] == "did you mean 'notes'?; connectors you can use: notes"
    long = await served.http.get("/v1/tools", params={"q": "count " * 300}, headers=served.auth())
    assert long.status_code == 400
    assert "query.q: String should have at most 1000 characters" in long.json()["detail"]


async def test_search_and_listing_keep_only_tools_with_one_of_the_tags(tmp_path: Path) -> None:
    document = tmp_path / "api.json"
    document.write_text(json.dumps(_tagged_document()))
    hub = make_hub()
    hub.add_connector(OpenAPIConnector.from_spec("api", document, base_url="http://127.0.0.1:9"))
    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("tagger", ["api.*", "notes.*"])
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
            found = await http.get("/v1/tools", params={"q": "list", "tags": "incidents"}, headers=auth)
            assert [t["name"] for t in found.json()["tools"]] == ["api.list_incidents"]  # any case
            params = [("tags", "Incidents"), ("tags", "Services")]
            both = await http.get("/v1/tools", params=params, headers=auth)
            assert {t["name"] for t in both.json()["tools"]} == {"api.list_incidents", "api.list_services"}
            assert both.json()["tools"][0]["tags"]
            typo = await http.get("/v1/tools", params={"q": "list", "tags": "Incident"}, headers=auth)
            assert typo.status_code == 404 and "did you mean 'Incidents'?" in typo.json()["hint"]
            async with Client(BASE, api_key=key, http_client=http) as client:
                answer = await client.search_tools("list", tags=["Services"])
                assert [t["name"] for t in answer["tools"]] == ["api.list_services"]
                assert (await client.get_tool("api.list_services")).tags == ("Services",)


def _tagged_document() -> dict[str, object]:
    ok = {"200": {"description": "ok"}}
    return {
        "openapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/incidents": {"get": {"operationId": "listIncidents", "tags": ["Incidents"], "responses": ok}},
            "/services": {"get": {"operationId": "listServices", "tags": ["Services"], "responses": ok}},
        },
    }


async def test_null_arguments_are_no_arguments_as_over_mcp(served: Served) -> None:
    """``{"arguments": null}`` was served as ``{}`` while the document said an object only: a client
    checking bodies against it could not send what MCP's ``tools/call`` takes too (found by the outside
    REST probe). Both surfaces call with no arguments; a tool that needs some says which."""
    document = (await served.http.get("/v1/openapi.json")).json()
    body = document["paths"]["/tools/{name}/call"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["arguments"]["type"] == ["object", "null"]
    over_rest = []
    for sent in ({"arguments": None}, {}):
        answer = await served.http.post("/v1/tools/notes.count/call", json=sent, headers=served.auth())
        assert answer.status_code == 422, answer.text
        over_rest.append(answer.json()["errors"])
    assert over_rest[0] == over_rest[1] and "text" in json.dumps(over_rest[0])
    mcp = {
        **served.auth(),
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
    }
    call = {"name": "notes.count", "arguments": None, "_meta": ENVELOPE}
    answer = await served.http.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call},
        headers={**mcp, "mcp-method": "tools/call", "mcp-name": "notes.count"},
    )
    result = answer.json()["result"]
    assert result["isError"] is True
    assert result["_meta"]["toolbridge/problem"]["errors"] == over_rest[0]
