"""Header values reach the surfaces without surrounding whitespace, under httptools (which keeps it)."""

from __future__ import annotations

import socket

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests._patience import patience
from toolbridge.surfaces._ows import StripOws, without_ows

pytestmark = pytest.mark.anyio
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nX-Key: abc \t\r\nConnection: close\r\n\r\n"


def test_only_scopes_with_padded_values_are_rebuilt() -> None:
    clean = {"type": "http", "headers": [(b"x-a", b"1")]}
    assert without_ows(clean) is clean
    padded = {"type": "http", "headers": [(b"x-a", b" 1\t"), (b"x-b", b"2")]}
    assert without_ows(padded)["headers"] == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert padded["headers"][0] == (b"x-a", b" 1\t")  # the original is left alone
    stripped = without_ows(padded)
    assert without_ows(stripped) is stripped  # a surface behind the middleware does not scan again


@pytest.mark.parametrize("strip", [False, True])
async def test_httptools_keeps_trailing_whitespace_and_strip_ows_removes_it(strip: bool) -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"[{request.headers['x-key']}]")

    app = Starlette(routes=[Route("/", echo)], middleware=[Middleware(StripOws)] if strip else [])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, http="httptools", log_level="warning"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(patience(30)):
                while not server.started:  # noqa: ASYNC110  # uvicorn offers no event: bounded polling
                    await anyio.sleep(0.01)
                async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(
                        b"GET / HTTP/1.1\r\nHost: x\r\nX-Key: abc \t\r\nConnection: close\r\n\r\n"
                    )
                    answer = b""
                    async for chunk in stream:
                        answer += chunk
            server.should_exit = True
    assert answer.endswith(b"[abc]" if strip else b"[abc \t]")
