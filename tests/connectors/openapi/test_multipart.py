"""Multipart bodies as a server reads them: a real server on 127.0.0.1 splits each request with
python-multipart (not toolbridge's code) and answers with the parts it found."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from tests.connectors.openapi.conftest import ingested, openapi
from toolbridge import Hub, Principal
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.connectors.openapi._multipart import Part, encode

pytestmark = pytest.mark.anyio

OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}


def split(content_type: str, body: bytes) -> list[dict[str, Any]]:
    """The parts of a multipart body: name, filename, Content-Type and content (base64)."""
    _, options = parse_options_header(content_type)
    parts: list[dict[str, Any]] = []
    header: dict[str, bytes] = {"field": b"", "value": b""}
    current: dict[str, Any] = {}

    def begin() -> None:
        current.clear()
        current.update(headers={}, data=b"")

    def header_end() -> None:
        current["headers"][header["field"].decode().lower()] = header["value"].decode()
        header.update(field=b"", value=b"")

    def end() -> None:
        _, disposition = parse_options_header(current["headers"].get("content-disposition", ""))
        parts.append(
            {
                "name": disposition.get(b"name", b"").decode(),
                "filename": disposition[b"filename"].decode() if b"filename" in disposition else None,
                "type": current["headers"].get("content-type"),
                "content": base64.b64encode(current["data"]).decode(),
            }
        )

    def add(key: str, data: bytes, start: int, stop: int) -> None:
        header[key] += data[start:stop]

    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_part_begin": begin,
            "on_part_data": lambda d, a, b: current.update(data=current["data"] + d[a:b]),
            "on_part_end": end,
            "on_header_field": lambda d, a, b: add("field", d, a, b),
            "on_header_value": lambda d, a, b: add("value", d, a, b),
            "on_header_end": header_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return parts


async def parts(request: Request) -> JSONResponse:
    kind, body = request.headers["content-type"], await request.body()
    if kind.startswith("multipart/"):
        return JSONResponse({"parts": split(kind, body)})
    return JSONResponse({"type": kind, "content": base64.b64encode(body).decode()})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    sock = loopback_socket()
    app = Starlette(routes=[Route("/{path:path}", parts, methods=["POST"])])
    with uvicorn_thread(app, sock):
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"


def multipart_doc(properties: dict[str, Any], **content: Any) -> dict[str, Any]:
    return body_doc("multipart/form-data", {"type": "object", "properties": properties}, **content)


def body_doc(media_type: str, schema: dict[str, Any], **content: Any) -> dict[str, Any]:
    body = {"required": True, "content": {media_type: {"schema": schema, **content}}}
    return openapi({"/up": {"post": {"operationId": "up", "requestBody": body, "responses": OK}}}, "3.1.0")


async def answer(base: str, document: dict[str, Any], arguments: dict[str, Any]) -> Any:
    hub = Hub()
    hub.add_connector(OpenAPIConnector("api", ingested(document), base_url=base))
    async with hub:
        return (await hub.call(Principal.local(), "api.up", arguments)).value


async def received(base: str, document: dict[str, Any], arguments: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await answer(base, document, arguments))["parts"]
    return found


def text(part: dict[str, Any]) -> str:
    return base64.b64decode(part["content"]).decode()


async def test_a_value_carrying_a_boundary_and_part_headers_stays_one_part(base: str) -> None:
    # the boundary was fixed and public: this value added a `role` part the schema forbids
    forged = 'hi\r\n--toolbridge-form-boundary-7d2a\r\nContent-Disposition: form-data; name="role"\r\n\r\n'
    forged += "admin"
    document = multipart_doc({"title": {"type": "string"}, "role": {"type": "string", "enum": ["user"]}})
    found = await received(base, document, {"title": forged})
    assert [(p["name"], p["filename"], text(p)) for p in found] == [("title", None, forged)]


async def test_parts_that_look_like_delimiters_arrive_as_sent_beside_a_file(base: str) -> None:
    document = multipart_doc({"file": {"type": "string", "format": "binary"}, "note": {"type": "string"}})
    first = await received(base, document, {"file": "--toolbridge-", "note": "\r\n--\r\n"})
    assert [(p["name"], p["filename"], text(p)) for p in first] == [
        ("file", "file", "--toolbridge-"),
        ("note", None, "\r\n--\r\n"),
    ]


async def test_names_are_escaped_as_browsers_escape_them(base: str) -> None:
    name = 'a"b\r\nContent-Type: text/html'
    document = multipart_doc({name: {"type": "string"}})
    (found,) = await received(base, document, {"a_b_Content-Type_text_html": "v"})
    assert (found["name"], found["type"], text(found)) == ("a%22b%0D%0AContent-Type: text/html", None, "v")


def test_each_body_has_its_own_boundary_found_in_no_part() -> None:
    parts = [Part("a", b"--toolbridge-"), Part("f", bytes(range(256)), "f", "application/octet-stream")]
    (first_type, first), (second_type, _) = encode(parts), encode(parts)
    boundary = first_type.partition("boundary=")[2].encode()
    assert first_type != second_type and len(boundary) >= 32
    assert first.count(boundary) == 3  # two parts and the close; never inside a part


PNG = b"\x89PNG\r\n\x1a\n\x00"
FILE_FORMS = {
    "octets": {"type": "string", "contentMediaType": "application/octet-stream"},  # 3.1's own example
    "image": {"type": "string", "contentMediaType": "image/png"},
    "typed": {"type": "string", "contentMediaType": "image/png"},  # the encoding object's type wins
    "discord": {"type": "string", "contentEncoding": "binary"},  # Discord's document
    "format": {"type": "string", "format": "binary"},  # 3.0's form
    "text": {"type": "string", "contentMediaType": "image/png", "contentEncoding": "base64"},
}


async def test_openapi_3_1_file_parts_carry_the_decoded_bytes_or_their_base64_text(base: str) -> None:
    document = multipart_doc(FILE_FORMS, encoding={"typed": {"contentType": "image/webp"}})
    (tool,) = ingested(document).tools
    for name in FILE_FORMS:  # each asks for the same argument: text, or base64: and the bytes
        shown = tool.input_schema["properties"][name]
        assert "base64:" in shown["description"] and "contentEncoding" not in shown, name
    sent = "base64:" + base64.b64encode(PNG).decode()
    found = await received(base, document, dict.fromkeys(FILE_FORMS, sent))
    assert [(p["name"], p["filename"], p["type"]) for p in found] == [
        ("octets", "octets", "application/octet-stream"),
        ("image", "image", "image/png"),
        ("typed", "typed", "image/webp"),
        ("discord", "discord", "application/octet-stream"),
        ("format", "format", "application/octet-stream"),
        ("text", "text", "image/png"),
    ]
    assert [base64.b64decode(p["content"]) for p in found[:5]] == [PNG] * 5
    assert base64.b64decode(found[5]["content"]) == base64.b64encode(PNG)  # the part is base64 text


async def test_a_base64_string_in_a_json_body_is_sent_as_the_agent_wrote_it(base: str) -> None:
    schema = {"type": "object", "properties": {"icon": FILE_FORMS["text"]}}
    document = body_doc("application/json", schema)
    assert await answer(base, document, {"icon": "iVBORw=="}) == {
        "type": "application/json",
        "content": base64.b64encode(b'{"icon":"iVBORw=="}').decode(),
    }


@pytest.mark.parametrize(
    ("media_type", "schema", "wire"),
    [
        ("image/png", {"type": "string", "contentEncoding": "base64"}, base64.b64encode(PNG)),
        ("image/png", {"type": "string", "contentEncoding": "base64url"}, base64.urlsafe_b64encode(PNG)),
        ("application/octet-stream", {"type": "string", "contentMediaType": "image/png"}, PNG),
        ("*/*", {"type": "string", "contentMediaType": "application/octet-stream"}, PNG),
    ],
)
async def test_a_whole_file_body_is_its_bytes_or_their_base64_text(
    base: str, media_type: str, schema: dict[str, Any], wire: bytes
) -> None:
    document = body_doc(media_type, {**schema, "description": "The image."})
    (tool,) = ingested(document).tools
    assert "base64:" in tool.input_schema["properties"]["body"]["description"]
    found = await answer(base, document, {"body": "base64:" + base64.b64encode(PNG).decode()})
    assert base64.b64decode(found["content"]) == wire
    assert found["type"] == media_type.replace("*/*", "application/octet-stream")
