"""MCP over streamable HTTP, raw JSON-RPC over ASGI: both eras, agent views, errors and the HTTP checks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette

from toolbridge import Hub, Principal

from .conftest import ENVELOPE, LEGACY, MODERN, Served, make_hub, serve

pytestmark = pytest.mark.anyio


def names(response: httpx2.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [tool["name"] for tool in response.json()["result"]["tools"]]


# -- the catalog, per agent ----------------------------------------------------------------------


async def test_legacy_session_lists_the_agents_tools(served: Served) -> None:
    alice = await served.initialize("alice")
    reader = await served.initialize("reader")
    assert names(await served.legacy(alice, "tools/list")) == [
        "admin.wipe",
        "demo.add",
        "demo.big",
        "demo.echo",
        "demo.fail",
    ]
    assert names(await served.legacy(reader, "tools/list", agent="reader")) == [
        "demo.big",
        "demo.echo",
        "demo.fail",
    ]


async def test_stateless_era_lists_the_agents_tools(served: Served) -> None:
    assert names(await served.modern("tools/list", agent="reader")) == ["demo.big", "demo.echo", "demo.fail"]
    result = (await served.modern("tools/list")).json()["result"]
    assert result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "toolbridge"


async def test_tool_listing_carries_schema_title_and_hints(served: Served) -> None:
    tools = {t["name"]: t for t in (await served.modern("tools/list")).json()["result"]["tools"]}
    add, echo, wipe = tools["demo.add"], tools["demo.echo"], tools["admin.wipe"]
    assert add["title"] == "Add numbers"
    assert add["description"] == "Add two numbers."
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert add["outputSchema"]["type"] == "object"
    assert "outputSchema" not in echo
    assert echo["annotations"] == {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    }
    assert wipe["annotations"]["destructiveHint"] is True


async def test_initialize_announces_toolbridge_with_tools(served: Served) -> None:
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    response = await served.post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    result = response.json()["result"]
    assert result["protocolVersion"] == LEGACY
    assert result["serverInfo"]["name"] == "toolbridge"
    assert "tools" in result["capabilities"]


# -- tools/call -----------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_call_returns_text_and_structured_content(served: Served, era: str) -> None:
    params = {"name": "demo.add", "arguments": {"a": 2, "b": 3}}
    if era == "legacy":
        response = await served.legacy(await served.initialize(), "tools/call", params)
    else:
        response = await served.modern("tools/call", params)
    result = response.json()["result"]
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": '{"sum":5}'}]
    assert result["structuredContent"] == {"sum": 5}
    assert result["_meta"]["toolbridge/request-id"] == response.headers["x-request-id"]


async def test_a_string_result_is_text_only(served: Served) -> None:
    result = (await served.modern("tools/call", {"name": "demo.echo", "arguments": {"text": "hi"}})).json()[
        "result"
    ]
    assert result["content"] == [{"type": "text", "text": "hi"}]
    assert "structuredContent" not in result


async def test_the_callers_request_id_reaches_the_audit_log(served: Served) -> None:
    params = {"name": "demo.echo", "arguments": {"text": "hi"}}
    response = await served.modern("tools/call", params, x_request_id="trace-42")
    assert response.headers["x-request-id"] == "trace-42"
    assert response.json()["result"]["_meta"]["toolbridge/request-id"] == "trace-42"


async def test_idempotency_key_from_meta_reaches_the_hub(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []
    call = served.hub.call

    async def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("idempotency_key"))  # type: ignore[arg-type]
        return await call(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(served.hub, "call", spy)
    session = await served.initialize()
    params = {"name": "demo.echo", "arguments": {"text": "x"}}
    await served.legacy(session, "tools/call", {**params, "_meta": {"toolbridge/idempotency-key": "k-1"}})
    await served.legacy(session, "tools/call", {**params, "_meta": {"idempotencyKey": "k-2"}})
    await served.legacy(session, "tools/call", params)
    assert seen == ["k-1", "k-2", None]


async def test_invalid_arguments_are_a_tool_error_the_model_can_fix(served: Served) -> None:
    response = await served.modern("tools/call", {"name": "demo.add", "arguments": {"a": "two"}})
    result = response.json()["result"]
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "'b' is a required property" in text
    assert "'two' is not of type 'integer'" in text
    assert "hint: fix the named fields" in text
    assert result["_meta"]["toolbridge/problem"]["code"] == "invalid_arguments"


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_lone_surrogate_in_the_arguments_is_invalid_arguments_not_a_toolbridge_bug(
    served: Served, era: str
) -> None:
    """JSON's "\\ud800" escape without its other half is no Unicode: it failed "inside toolbridge" (502,
    with a traceback in the log) when the arguments were serialized for the audit."""
    body = (
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo.echo",'
        b'"arguments":{"text":"a\\ud800b"}%s}}'
    )
    if era == "legacy":
        session = await served.initialize()
        await served.legacy(session, "tools/list")  # (a session's first request after it opens is the SDK's)
        response = await served.post(body % b"", mcp_session_id=session, mcp_protocol_version=LEGACY)
    else:
        envelope = b',"_meta":' + json.dumps(ENVELOPE).encode()
        routing = {"mcp_protocol_version": MODERN, "mcp_method": "tools/call", "mcp_name": "demo.echo"}
        response = await served.post(body % envelope, **routing)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["isError"] is True, result
    problem = result["_meta"]["toolbridge/problem"]
    assert problem["code"] == "invalid_arguments" and problem["errors"][0]["field"] == "text", problem
    assert "not valid Unicode at text" in result["content"][0]["text"]


async def test_a_tool_that_raises_is_a_tool_error(served: Served) -> None:
    session = await served.initialize()
    response = await served.legacy(
        session, "tools/call", {"name": "demo.fail", "arguments": {"reason": "disk full"}}
    )
    result = response.json()["result"]
    assert result["isError"] is True
    assert "disk full" in result["content"][0]["text"]


async def test_a_tool_outside_the_agents_scopes_answers_like_a_missing_one(served: Served) -> None:
    hidden = await served.modern("tools/call", {"name": "demo.add", "arguments": {"a": 1}}, agent="reader")
    missing = await served.modern("tools/call", {"name": "demo.zzz", "arguments": {"a": 1}}, agent="reader")
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"] == -32602
    assert (
        hidden.json()["error"]["message"]
        == "no tool named 'demo.add': list the available tools with tools/list or GET /v1/tools"
    )
    assert hidden.json()["error"]["data"]["suggestions"] == []


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_unknown_tool_is_invalid_params_with_did_you_mean(served: Served, era: str) -> None:
    params = {"name": "demo.ecko", "arguments": {"text": "hi"}}
    if era == "legacy":
        response = await served.legacy(await served.initialize(), "tools/call", params)
    else:
        response = await served.modern("tools/call", params)
    error = response.json()["error"]
    assert error["code"] == -32602
    assert "no tool named 'demo.ecko'" in error["message"]
    assert "did you mean 'demo.echo'?" in error["message"]
    assert error["data"]["suggestions"] == ["demo.echo"]


async def test_a_truncated_result_keeps_its_marker(served: Served) -> None:
    result = (await served.modern("tools/call", {"name": "demo.big", "arguments": {"size": 5_000}})).json()[
        "result"
    ]
    assert result["isError"] is False
    assert "[toolbridge: result truncated" in result["content"][0]["text"]


async def test_a_bad_idempotency_key_is_invalid_params(served: Served) -> None:
    params = {"name": "demo.echo", "arguments": {"text": "x"}, "_meta": {"idempotencyKey": 12}}
    response = await served.legacy(await served.initialize(), "tools/call", params)
    assert response.json()["error"]["code"] == -32602


# -- authentication -------------------------------------------------------------------------------


async def test_a_request_without_a_key_is_401(served: Served) -> None:
    response = await served.modern("tools/list", agent=None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"


async def test_an_unknown_key_is_401(served: Served) -> None:
    served.keys["mallory"] = "tb_not-a-real-key"
    assert (await served.modern("tools/list", agent="mallory")).status_code == 401


async def test_x_api_key_header_is_accepted(served: Served) -> None:
    headers = served.headers(None, mcp_protocol_version=MODERN, mcp_method="tools/list")
    headers["x-api-key"] = served.keys["reader"]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    response = await served.http.post("/mcp", json=body, headers=headers)
    assert names(response) == ["demo.big", "demo.echo", "demo.fail"]


async def test_a_revoked_key_is_401_even_inside_its_session(served: Served) -> None:
    session = await served.initialize("reader")
    await served.hub.agents.revoke("reader")
    response = await served.legacy(session, "tools/list", agent="reader")
    assert response.status_code == 401


async def test_a_session_is_not_authentication(served: Served) -> None:
    session = await served.initialize("reader")
    assert (await served.legacy(session, "tools/list", agent=None)).status_code == 401
    hijack = await served.legacy(session, "tools/list", agent="alice")
    assert hijack.status_code == 404
    assert "result" not in hijack.json()
    assert names(await served.legacy(session, "tools/list", agent="reader")) == [
        "demo.big",
        "demo.echo",
        "demo.fail",
    ]


async def test_anonymous_principal_serves_requests_without_a_key(anonymous: Principal) -> None:
    async with serve(make_hub(), anonymous_principal=anonymous) as served:
        assert names(await served.modern("tools/list", agent=None)) == ["demo.big", "demo.echo", "demo.fail"]
        served.keys["mallory"] = "tb_wrong"
        assert (await served.modern("tools/list", agent="mallory")).status_code == 401
        basic = await served.modern("tools/list", agent=None, authorization="Basic dXNlcjpwdw==")
        assert basic.status_code == 401
        assert len(names(await served.modern("tools/list"))) == 5


# -- HTTP-level checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
async def test_a_foreign_origin_is_403(served: Served, origin: str) -> None:
    response = await served.modern("tools/list", origin=origin)
    assert response.status_code == 403
    assert response.json()["code"] == "origin_not_allowed"


async def test_dns_rebinding_host_and_origin_are_refused_on_loopback(served: Served) -> None:
    response = await served.modern("tools/list", host="evil.example", origin="http://evil.example")
    assert response.status_code == 403


@pytest.mark.parametrize("origin", ["http://localhost:6274", "http://127.0.0.1:8080", "http://[::1]"])
async def test_loopback_origins_are_allowed(served: Served, origin: str) -> None:
    assert (await served.modern("tools/list", origin=origin)).status_code == 200


async def test_configured_origins_are_allowed() -> None:
    async with serve(make_hub(), allowed_origins=["https://app.example.com"]) as served:
        assert (await served.modern("tools/list", origin="https://app.example.com")).status_code == 200
        assert (await served.modern("tools/list", origin="https://other.example.com")).status_code == 403


async def test_an_oversize_body_is_413() -> None:
    async with serve(make_hub(), max_body_bytes=2_000) as served:
        response = await served.modern(
            "tools/call", {"name": "demo.echo", "arguments": {"text": "x" * 3_000}}
        )
        assert response.status_code == 413
        assert response.json()["limit"] == 2_000

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            for _ in range(3):
                yield b"x" * 1_000

        streamed = await served.http.post("/mcp", content=chunks(), headers=served.headers())
        assert streamed.status_code == 413


@pytest.mark.parametrize("version", [None, MODERN])
async def test_malformed_json_is_a_parse_error(served: Served, version: str | None) -> None:
    extra = {"mcp_protocol_version": version} if version else {}
    response = await served.post(b'{"jsonrpc": "2.0", "id": 1, "method": ', **extra)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize("version", [None, LEGACY, MODERN])
@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        {"hello": "world"},
        {"jsonrpc": "2.0", "id": 1},
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
    ],
)
async def test_a_body_that_is_not_one_request_is_invalid_request(
    served: Served, body: object, version: str | None
) -> None:
    extra = {"mcp_protocol_version": version} if version else {}
    response = await served.post(body, **extra)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600


@pytest.mark.parametrize("version", [LEGACY, MODERN])
@pytest.mark.parametrize(
    ("header", "value", "status", "says"),
    [
        ("content_type", "text/plain", 400, "'Content-Type: application/json' (got 'text/plain')"),
        ("accept", "text/html", 406, "'Accept: application/json, text/event-stream' (got 'text/html')"),
    ],
)
async def test_a_post_with_the_wrong_content_type_or_accept_names_the_header_to_send(
    served: Served, version: str, header: str, value: str, status: int, says: str
) -> None:
    """The SDK answered a plain-text 400 "Invalid Content-Type header", and an empty 406 in the stateless
    era: a JSON-RPC client could not read either."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": ENVELOPE}}
    response = await served.post(body, mcp_protocol_version=version, mcp_method="ping", **{header: value})
    assert response.status_code == status
    assert response.json()["error"]["code"] == -32600 and says in response.json()["error"]["message"]


async def test_stateless_envelope_mismatch_is_refused(served: Served) -> None:
    params = {"name": "demo.echo", "arguments": {"text": "x"}}
    response = await served.modern("tools/call", params, mcp_name="demo.add")
    assert response.status_code == 400
    assert "error" in response.json()


async def test_routes_serve_both_mcp_and_mcp_slash() -> None:
    hub = make_hub()
    async with serve(hub) as served:
        app = Starlette(routes=served.surface.routes())
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as http:
            for path in ("/mcp", "/mcp/"):
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": ENVELOPE}}
                headers = served.headers(mcp_protocol_version=MODERN, mcp_method="tools/list")
                response = await http.post(path, json=body, headers=headers)
                assert names(response) == ["admin.wipe", "demo.add", "demo.big", "demo.echo", "demo.fail"], (
                    path
                )


async def test_surface_refuses_a_second_start(served: Served) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        await served.surface.__aenter__()


def test_max_body_bytes_must_be_positive() -> None:
    from toolbridge.surfaces.mcp import McpSurface

    with pytest.raises(ValueError, match="positive"):
        McpSurface(Hub(), max_body_bytes=0)


@pytest.mark.parametrize(
    ("method", "params", "says"),
    [
        ("resources/read", {}, "invalid params for resources/read: uri: Field required"),
        ("logging/setLevel", {"level": "loud"}, "invalid params for logging/setLevel: level: Input should"),
        ("prompts/get", {"name": 5}, "invalid params for prompts/get: name: Input should be a valid string"),
    ],
)
async def test_bad_params_of_other_methods_name_the_field(
    served: Served, method: str, params: dict[str, object], says: str
) -> None:
    """The SDK answered these with a bare "Invalid request parameters" and an empty data."""
    session = await served.initialize("alice")
    legacy = (await served.legacy(session, method, params)).json()["error"]
    assert legacy["code"] == -32602 and legacy["message"].startswith(says), legacy
    assert legacy["data"]["errors"][0]["field"] in ("uri", "level", "name")
    if method == "resources/read":  # (setLevel is the session era's; prompts/get's name is routed by header)
        modern = (await served.modern(method, params)).json()["error"]
        assert modern["code"] == -32602 and modern["message"].startswith(says), modern


async def test_a_protocol_version_header_this_server_does_not_speak_says_which_it_does(
    served: Served,
) -> None:
    """A valid session's request with MCP-Protocol-Version 1999-01-01 was answered about params._meta."""
    session = await served.initialize("alice")
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    answer = await served.post(body, mcp_session_id=session, mcp_protocol_version="1999-01-01")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == -32022 and "MCP-Protocol-Version is '1999-01-01'" in error["message"]
    assert error["data"]["requested"] == "1999-01-01" and LEGACY in error["data"]["supported"]
    assert answer.json()["id"] == 3  # an error answer carries the request's id


@pytest.mark.parametrize("era", ["legacy", "modern"])
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"args": {"text": "x"}}, "params.args is not read: send the tool's arguments as params.arguments"),
        ({"text": "x"}, "params.text is not read: the tool's arguments go under params.arguments: {\"name"),
        ({"text": "x", "arguments": {}}, "params.text is not read"),
        ({"parameters": {"text": "x"}}, "params.parameters is not read"),
        ({"arguments": {"text": "x"}, "idempotency_key": "k1"}, "params.idempotency_key is not read"),
        ({"arguments": {"text": "x"}, "_meta": {"idempotency_key": "k1"}}, "_meta['idempotency_key'] is not"),
        ({"arguments": {"text": "x"}, "_meta": {"Idempotency-Key": "k1"}}, "toolbridge/idempotency-key"),
    ],
)
async def test_misplaced_arguments_or_idempotency_keys_are_refused_not_dropped(
    served: Served, era: str, params: dict[str, object], says: str
) -> None:
    """Dropped, ``args`` (or ``text`` itself beside ``name``) gave "'text' is a required property" although
    the agent sent it, and a misspelt key let the same write apply twice; both are -32602 naming where it
    goes."""
    call = {"name": "demo.echo", **params}
    if era == "legacy":
        response = await served.legacy(await served.initialize(), "tools/call", call)
    else:
        response = await served.modern("tools/call", call)
    error = response.json()["error"]
    assert error["code"] == -32602 and says in error["message"], error


@pytest.mark.parametrize("bad_id", [{"a": 1}, [1], None, 1.5, True])
async def test_a_session_request_whose_id_is_not_a_string_or_integer_is_answered_32600(
    served: Served, bad_id: object
) -> None:
    """It was taken for a notification: 202, not run, no answer, and the client waited for ever."""
    session = await served.initialize()
    body = {"jsonrpc": "2.0", "id": bad_id, "method": "tools/call", "params": {"name": "demo.echo"}}
    response = await served.post(body, mcp_session_id=session, mcp_protocol_version=LEGACY)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == -32600 and "string or an integer" in error["message"]
