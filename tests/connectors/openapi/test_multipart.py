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
    return JSONResponse({"parts": split(request.headers["content-type"], await request.body())})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    sock = loopback_socket()
    app = Starlette(routes=[Route("/{path:path}", parts, methods=["POST"])])
    with uvicorn_thread(app, sock):
        host, port = sock.getsockname()
        yield f"http://{host}:{port}"


def multipart_doc(properties: dict[str, Any], **content: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    media = {"multipart/form-data": {"schema": schema, **content}}
    body = {"required": True, "content": media}
    return openapi({"/up": {"post": {"operationId": "up", "requestBody": body, "responses": OK}}}, "3.1.0")


async def received(base: str, document: dict[str, Any], arguments: dict[str, Any]) -> list[dict[str, Any]]:
    hub = Hub()
    hub.add_connector(OpenAPIConnector("api", ingested(document), base_url=base))
    async with hub:
        result = await hub.call(Principal.local(), "api.up", arguments)
    found: list[dict[str, Any]] = result.value["parts"]
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
