"""Tool calls → the requests an API expects, and responses → results or typed errors.

The upstream is an ``httpx2.MockTransport`` recording each request (edge cases a real server can't
produce); the prism end-to-end test checks the same against real documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tests.connectors.openapi.conftest import ingested, openapi
from toolbridge import (
    CredentialsError,
    Hub,
    InvalidArguments,
    Principal,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.connectors.openapi import IngestOptions, OpenAPIConnector

pytestmark = pytest.mark.anyio

OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
Handler = Callable[[httpx2.Request], httpx2.Response]


class Upstream:
    """A mock upstream that records requests and answers with ``reply``."""

    def __init__(self, reply: Handler | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.reply = reply or (lambda r: httpx2.Response(200, json={"ok": True}))

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        return self.reply(request)

    @property
    def last(self) -> httpx2.Request:
        return self.requests[-1]


async def call(
    document: dict[str, Any], tool: str, arguments: dict[str, Any], upstream: Upstream, **kw: Any
) -> Any:
    connector = OpenAPIConnector(
        "api",
        ingested(document),
        base_url="https://api.test/v1",
        transport=httpx2.MockTransport(upstream),
        **kw,
    )
    hub = Hub()
    hub.add_connector(connector)
    async with hub:
        return (await hub.call(Principal.local(), f"api.{tool}", arguments)).value


PARAMS_DOC = openapi(
    {
        "/items/{id}": {
            "get": {
                "operationId": "get",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "array", "items": {"type": "integer"}},
                        "style": "label",
                    },
                    {
                        "name": "tags",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "explode": False,
                    },
                    {"name": "filter", "in": "query", "style": "deepObject", "schema": {"type": "object"}},
                    {"name": "X-Request-Id", "in": "header", "schema": {"type": "string"}},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                    {
                        "name": "meta",
                        "in": "query",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    {"name": "Accept", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": OK,
            }
        }
    }
)


async def test_path_query_header_and_cookie_parameters() -> None:
    upstream = Upstream()
    arguments = {
        "id": [1, 2],
        "tags": ["a b", "c,d"],
        "filter": {"status": "open"},
        "X-Request-Id": "r-1",
        "session": "s 1",
        "meta": {"k": 1},
    }
    assert await call(PARAMS_DOC, "get", arguments, upstream) == {"ok": True}
    request = upstream.last
    assert request.method == "GET"
    assert request.url.raw_path.decode() == (
        "/v1/items/.1,2?tags=a%20b,c%2Cd&filter%5Bstatus%5D=open&meta=%7B%22k%22%3A1%7D"
    )
    assert request.headers["X-Request-Id"] == "r-1"
    assert request.headers["Cookie"] == "session=s%201"
    assert request.headers["Accept"] == "application/json"


def _path_param(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, **extra}


COMMENT_DOC = openapi(
    {
        "/repos/{owner}/{repo}/comments/{id}": {
            "delete": {
                "operationId": "delete_comment",
                "parameters": [_path_param("owner"), _path_param("repo"), _path_param("id")],
                "responses": OK,
            }
        },
        "/files/{a}{b}": {"get": {"operationId": "pair", "parameters": [_path_param("a"), _path_param("b")]}},
        "/tags/{t}": {"get": {"operationId": "tag", "parameters": [_path_param("t", style="label")]}},
    }
)


@pytest.mark.parametrize(
    ("tool", "arguments", "refused"),
    [
        ("delete_comment", {"owner": "o", "repo": "r", "id": ".."}, "id"),
        ("delete_comment", {"owner": "o", "repo": "..", "id": "7"}, "repo"),
        ("delete_comment", {"owner": ".", "repo": "r", "id": "7"}, "owner"),
        ("pair", {"a": ".", "b": "."}, "a"),
        ("tag", {"t": ""}, "t"),
        ("delete_comment", {"owner": "o", "repo": "", "id": "7"}, "repo"),
        ("delete_comment", {"owner": "o", "repo": "r", "id": ""}, "id"),
        ("pair", {"a": "", "b": ""}, "a"),
    ],
)
async def test_a_path_argument_that_makes_a_dot_or_empty_segment_is_refused(
    tool: str, arguments: dict[str, Any], refused: str
) -> None:
    """URL normalization drops a ``.`` or ``..`` segment with the one before it: ``id='..'`` sent
    ``DELETE /repos/o/r/comments/..`` as ``DELETE /repos/o/r``, the repository (found by an outside probe
    of GitHub's document: ``repo='.'`` reached ``POST /repos/{owner}/labels``, which prism did not know).
    An empty value leaves an empty segment: ``/repos//labels``, merged into ``/repos/labels`` by many
    servers (found by the same probe)."""
    upstream = Upstream()
    with pytest.raises(InvalidArguments) as caught:
        await call(COMMENT_DOC, tool, arguments, upstream)
    assert upstream.requests == []
    assert caught.value.errors[0]["field"] == refused


async def test_dots_inside_a_path_segment_are_sent() -> None:
    upstream = Upstream()
    for value in ("...", "a.b", ".x"):
        await call(COMMENT_DOC, "delete_comment", {"owner": "o", "repo": "r", "id": value}, upstream)
        assert upstream.last.url.raw_path.decode() == f"/v1/repos/o/r/comments/{value}"


@pytest.mark.parametrize("value", ["café", "a\r\nX-Injected: 1", "\x00"])
@pytest.mark.parametrize("own_wire", [True, False])
async def test_a_header_argument_that_is_not_printable_ascii_is_refused(value: str, own_wire: bool) -> None:
    """Box's document has header arguments (``if-match``, ``boxapi``); ``café`` failed inside toolbridge
    (UnicodeEncodeError: 'this is a toolbridge bug') through httpx2 and was an unreachable upstream, to be
    retried, on the default wire. Found by an outside probe (5 of 520 Box calls)."""
    upstream = Upstream()
    kw: dict[str, Any] = {} if own_wire else {"transport": httpx2.MockTransport(upstream)}
    connector = OpenAPIConnector("api", ingested(PARAMS_DOC), base_url="http://127.0.0.1:9", **kw)
    hub = Hub()
    hub.add_connector(connector)
    async with hub:
        with pytest.raises(InvalidArguments) as caught:
            await hub.call(Principal.local(), "api.get", {"id": [1], "X-Request-Id": value})
    assert upstream.requests == []
    assert caught.value.errors[0]["field"] == "X-Request-Id"


def body_doc(media: str, schema: dict[str, Any], **content: Any) -> dict[str, Any]:
    body = {"required": True, "content": {media: {"schema": schema, **content}}}
    return openapi({"/up": {"post": {"operationId": "up", "requestBody": body, "responses": OK}}})


OBJ = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "n": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


async def test_json_body_spread_into_arguments() -> None:
    upstream = Upstream()
    await call(body_doc("application/json", OBJ), "up", {"name": "x", "n": 2}, upstream)
    assert upstream.last.headers["Content-Type"] == "application/json"
    assert json.loads(upstream.last.content) == {"name": "x", "n": 2}


async def test_a_required_member_the_body_does_not_describe_is_an_argument_that_takes_any_value() -> None:
    # Figma's PUT /v2/webhooks/{webhook_id} requires `team_id` and lists no such property: it was dropped,
    # so no call could send it and every call was refused by the upstream
    schema = {**OBJ, "required": ["name", "team_id"]}
    upstream = Upstream()
    await call(body_doc("application/json", schema), "up", {"name": "x", "team_id": "t1"}, upstream)
    assert json.loads(upstream.last.content) == {"name": "x", "team_id": "t1"}
    (tool,) = ingested(body_doc("application/json", schema)).tools
    assert {"name", "team_id"} <= set(tool.input_schema["required"])


async def test_a_json_body_declared_as_a_media_range_goes_out_as_application_json() -> None:
    """Kubernetes' Swagger 2.0 document says ``consumes: ["*/*"]`` for every create, replace and delete
    (282 operations): toolbridge sent ``Content-Type: */*``, which is no media type (the API server answers
    415; prism let it pass). Found by an outside probe."""
    swagger = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "consumes": ["*/*"],
        "paths": {
            "/pods": {
                "post": {
                    "operationId": "create",
                    "parameters": [{"name": "body", "in": "body", "required": True, "schema": OBJ}],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    upstream = Upstream()
    await call(swagger, "create", {"name": "x"}, upstream)
    assert upstream.last.headers["Content-Type"] == "application/json"
    assert json.loads(upstream.last.content) == {"name": "x"}
    await call(body_doc("*/*", OBJ), "up", {"n": 1}, upstream)
    assert upstream.last.headers["Content-Type"] == "application/json"


async def test_a_list_body_offered_as_multipart_and_any_type_goes_as_json() -> None:
    """Jira's ``PUT /settings/columns`` offers ``multipart/form-data`` and ``*/*`` for an array of names:
    multipart was chosen, and every call failed inside toolbridge (AttributeError: a list has no fields).
    Found by an outside probe."""
    names = {"type": "array", "items": {"type": "string"}}
    content = {"multipart/form-data": {"schema": names}, "*/*": {"schema": names}}
    doc = openapi({"/columns": {"put": {"operationId": "columns", "requestBody": {"content": content}}}})
    upstream = Upstream()
    await call(doc, "columns", {"body": ["summary", "status"]}, upstream)
    assert upstream.last.headers["Content-Type"] == "application/json"
    assert json.loads(upstream.last.content) == ["summary", "status"]


async def test_form_body() -> None:
    upstream = Upstream()
    await call(
        body_doc("application/x-www-form-urlencoded", OBJ),
        "up",
        {"name": "a&b", "tags": ["x", "y"]},
        upstream,
    )
    assert upstream.last.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert upstream.last.content == b"name=a%26b&tags=x&tags=y"


async def test_form_fields_follow_their_encoding_objects() -> None:
    """Stripe's form bodies say deepObject per field: 'shipping[name]=…'. Every field went out exploded
    form, so a nested member collided with the top-level field of its name (found by an outside probe)."""
    schema = {
        "type": "object",
        "properties": {
            "phone": {"type": "string"},
            "expand": {"type": "array", "items": {"type": "string"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "shipping": {"type": "object", "properties": {"phone": {"type": "string"}, "address": {}}},
            "tax_ids": {"type": "array", "items": {"type": "object"}},
        },
    }
    document = body_doc("application/x-www-form-urlencoded", schema)
    media = document["paths"]["/up"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    media["encoding"] = {
        "shipping": {"style": "deepObject", "explode": True},
        "expand": {"style": "deepObject", "explode": True},
        "tax_ids": {"style": "deepObject", "explode": True},
        "tags": {"style": "form", "explode": False},
    }
    upstream = Upstream()
    arguments = {
        "phone": "111",
        "expand": ["a", "b"],
        "tags": ["x", "y"],
        "shipping": {"phone": "222", "address": {"city": "Oslo"}},
        "tax_ids": [{"type": "eu_vat", "value": "v1"}],
    }
    await call(document, "up", arguments, upstream)
    assert upstream.last.content.decode().split("&") == [
        "phone=111",
        "expand%5B0%5D=a",
        "expand%5B1%5D=b",
        "tags=x,y",
        "shipping%5Bphone%5D=222",
        "shipping%5Baddress%5D%5Bcity%5D=Oslo",
        "tax_ids%5B0%5D%5Btype%5D=eu_vat",
        "tax_ids%5B0%5D%5Bvalue%5D=v1",
    ]


async def test_multipart_body_with_a_file() -> None:
    schema = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"type": "string"}},
    }
    doc = body_doc("multipart/form-data", schema, encoding={"file": {"contentType": "image/png"}})
    upstream = Upstream()
    await call(doc, "up", {"file": "base64:iVBORw==", "purpose": "test"}, upstream)
    content_type = upstream.last.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    body = upstream.last.content
    assert b'name="purpose"\r\n\r\ntest' in body
    assert b'filename="file"' in body and b"Content-Type: image/png" in body and b"\x89PNG" in body


async def test_multipart_object_parts_are_sent_as_json_with_their_content_type() -> None:
    meta = {"type": "object", "properties": {"title": {"type": "string"}}}
    schema = {"type": "object", "properties": {"metadata": meta, "note": {"type": "string"}}}
    upstream = Upstream()
    await call(
        body_doc("multipart/form-data", schema), "up", {"metadata": {"title": "é"}, "note": "n"}, upstream
    )
    body = upstream.last.content
    assert b'name="metadata"\r\nContent-Type: application/json\r\n\r\n{"title":"\xc3\xa9"}' in body
    assert b'name="note"\r\n\r\nn' in body


async def test_binary_body_and_a_whole_body_argument() -> None:
    upstream = Upstream()
    await call(
        body_doc("application/octet-stream", {"type": "string", "format": "binary"}),
        "up",
        {"body": "hello"},
        upstream,
    )
    assert upstream.last.content == b"hello"
    assert upstream.last.headers["Content-Type"] == "application/octet-stream"
    array_doc = body_doc("application/json", {"type": "array", "items": {"type": "integer"}})
    await call(array_doc, "up", {"body": [1, 2]}, upstream)
    assert json.loads(upstream.last.content) == [1, 2]


SECURE = openapi(
    {"/me": {"get": {"operationId": "me", "responses": OK}}},
    security=[{"key": []}, {"basic": []}],
    components={
        "securitySchemes": {
            "key": {"type": "apiKey", "in": "query", "name": "api_key"},
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"},
        }
    },
)


async def test_missing_credentials_say_what_to_configure() -> None:
    with pytest.raises(
        CredentialsError, match=r"needs credentials: key \(API key in query 'api_key'\)"
    ) as info:
        await call(SECURE, "me", {}, Upstream())
    assert "connections:" in (info.value.hint or "")


GET_DOC = openapi({"/r": {"get": {"operationId": "r", "responses": OK}}})


async def test_upstream_errors_carry_status_and_an_excerpt() -> None:
    upstream = Upstream(lambda r: httpx2.Response(404, json={"error": "no such item 42"}))
    with pytest.raises(UpstreamStatusError) as info:
        await call(GET_DOC, "r", {}, upstream)
    assert info.value.upstream_status == 404
    assert "no such item 42" in (info.value.body or "")
    assert "404" in info.value.message and info.value.hint


async def test_responses_text_binary_empty_and_truncated() -> None:
    replies = iter(
        [
            httpx2.Response(200, text="plain words", headers={"Content-Type": "text/plain"}),
            httpx2.Response(200, content=b"\x89PNG" * 10, headers={"Content-Type": "image/png"}),
            httpx2.Response(204),
            httpx2.Response(200, text="x" * 100, headers={"Content-Type": "text/plain"}),
        ]
    )
    upstream = Upstream(lambda r: next(replies))
    assert await call(GET_DOC, "r", {}, upstream) == "plain words"
    assert await call(GET_DOC, "r", {}, upstream) == {
        "content_type": "image/png",
        "size": 40,
        "note": "binary content is not shown to the agent",
    }
    assert await call(GET_DOC, "r", {}, upstream) == {"status": 204}
    cut = await call(GET_DOC, "r", {}, upstream, max_response_bytes=10)
    assert cut.startswith("xxxxxxxxxx\n[toolbridge: response truncated at 10 bytes]")


async def test_a_json_answer_that_does_not_parse_says_so() -> None:
    """An upstream's Content-Length shorter than its body: the answer ends mid-JSON and was handed to the
    agent as if it were the whole result (found by an outside chaos check)."""
    cut = b'{"id": "orders_1", "ref": "r1", "pad": "xxxx'
    upstream = Upstream(
        lambda r: httpx2.Response(200, content=cut, headers={"Content-Type": "application/json"})
    )
    text = await call(GET_DOC, "r", {}, upstream)
    assert text.startswith(cut.decode()), text
    assert text.endswith("[toolbridge: the upstream sent this as application/json, but it is not valid JSON]")


async def test_unreachable_upstream_is_a_typed_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    with pytest.raises(UpstreamUnavailable, match="cannot be reached") as info:
        await call(GET_DOC, "r", {}, Upstream(refuse))
    assert info.value.sent is False


async def test_a_connection_lost_after_sending_is_not_called_unreachable() -> None:
    """The upstream may have the request (it was reached, and may have applied it): "cannot be reached"
    told the agent nothing had happened (found by an outside probe)."""

    def drop(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadError("connection reset by peer", request=request)

    with pytest.raises(UpstreamUnavailable, match="broke the connection: ReadError") as info:
        await call(GET_DOC, "r", {}, Upstream(drop))
    assert info.value.sent is True and "cannot be reached" not in str(info.value)


LIST_DOC = openapi(
    {
        "/items": {
            "get": {
                "operationId": "list",
                "parameters": [
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": OK,
            }
        }
    }
)


async def test_pagination_follows_link_headers() -> None:
    def reply(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params.get("page", "1"))
        headers = {"Link": f'<https://api.test/v1/items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return httpx2.Response(200, json=[page], headers=headers)

    upstream = Upstream(reply)
    assert await call(LIST_DOC, "list", {}, upstream, max_pages=5) == [1, 2, 3]
    assert await call(LIST_DOC, "list", {}, upstream, max_pages=2) == [1, 2]


async def test_a_next_link_with_raw_utf8_is_followed_not_a_crash() -> None:
    """An upstream's Link header holding unencoded UTF-8 failed the call inside toolbridge
    (UnicodeEncodeError, "this is a toolbridge bug"; found by an outside SSRF probe)."""

    def reply(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params.get("page", "1"))
        link = f'<https://api.test/v1/items?page={page + 1}&q=café>; rel="next"'.encode()
        return httpx2.Response(200, json=[page], headers=[(b"Link", link)] if page < 2 else [])

    assert await call(LIST_DOC, "list", {}, Upstream(reply), max_pages=5) == [1, 2]


async def test_pagination_follows_cursors_and_offsets() -> None:
    def cursors(request: httpx2.Request) -> httpx2.Response:
        cursor = request.url.params.get("cursor")
        if cursor is None:
            return httpx2.Response(200, json={"items": [1], "response_metadata": {"next_cursor": "c2"}})
        return httpx2.Response(200, json={"items": [2], "response_metadata": {"next_cursor": ""}})

    result = await call(LIST_DOC, "list", {}, Upstream(cursors), max_pages=5)
    assert result["items"] == [1, 2] and result["toolbridge_pages"] == 2

    def offsets(request: httpx2.Request) -> httpx2.Response:
        offset = int(request.url.params.get("offset", "0"))
        return httpx2.Response(
            200, json={"things": [offset], "offset": offset, "limit": 10, "more": offset < 20}
        )

    assert (await call(LIST_DOC, "list", {}, Upstream(offsets), max_pages=9))["things"] == [0, 10, 20]


async def test_an_injected_client_is_used_and_left_open() -> None:
    upstream = Upstream()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(upstream)) as client:
        await call(GET_DOC, "r", {}, upstream, client=client)
        assert not client.is_closed
    assert len(upstream.requests) == 1


async def test_one_call_can_ask_for_fewer_pages() -> None:
    def reply(request: httpx2.Request) -> httpx2.Response:
        cursor = int(request.url.params.get("cursor", "1"))
        return httpx2.Response(200, json={"items": [cursor], "next_cursor": str(cursor + 1)})

    upstream = Upstream(reply)
    connector = OpenAPIConnector(
        "api",
        ingested(LIST_DOC, IngestOptions(max_pages=4)),
        base_url="https://api.test/v1",
        transport=httpx2.MockTransport(upstream),
        max_pages=4,
    )
    (tool,) = connector.tools()
    assert tool.input_schema["properties"]["max_pages"]["maximum"] == 4
    hub = Hub()
    hub.add_connector(connector)
    async with hub:
        assert (
            await hub.call(
                Principal.local(),
                "api.list",
                {},
            )
        ).value["items"] == [1, 2, 3, 4]
        assert (await hub.call(Principal.local(), "api.list", {"max_pages": 2})).value["items"] == [1, 2]
    assert "max_pages" not in str(upstream.last.url)


async def test_an_empty_path_argument_is_refused_with_what_to_send() -> None:
    with pytest.raises(InvalidArguments) as caught:
        await call(COMMENT_DOC, "delete_comment", {"owner": "o", "repo": "", "id": "7"}, Upstream())
    assert str(caught.value) == (
        "api.delete_comment: 'repo' would make the URL path segment empty, which addresses another "
        "resource (DELETE /repos/{owner}/{repo}/comments/{id}) (give 'repo' a value: "
        "/repos/{owner}/{repo}/comments/{id} needs each part)"
    )
