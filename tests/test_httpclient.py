"""toolbridge's own httpx2 clients close a socket whose TLS handshake is cancelled.

httpcore2 closes it only when ``start_tls`` raises an ``Exception``: a cancelled handshake (a call's
deadline, a worker stopping) left the socket to the garbage collector, whose ``ResourceWarning`` then
failed whatever test ran next. :func:`toolbridge._httpclient.closing_transport` is the fix; these tests
check it and that every client toolbridge builds for itself runs on it.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import httpx2
import pytest

import toolbridge
from tests._handshake import give_up_during_the_handshake
from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Client
from toolbridge._httpclient import closing_transport

pytestmark = pytest.mark.anyio

SRC = Path(toolbridge.__file__).parent
EXEMPT = {
    # the chaos kit talks plain HTTP to processes it started on 127.0.0.1: no TLS handshake to cancel
    "testing/_chaos_run.py",
}


def test_every_client_toolbridge_builds_is_given_its_transport() -> None:
    """An ``httpx2.AsyncClient(...)`` without ``transport=`` would run on httpcore2's leaking pool."""
    bare = []
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        text = path.read_text()
        if name in EXEMPT or "AsyncClient(" not in text:
            continue
        for node in ast.walk(ast.parse(text, name)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AsyncClient"
                and not any(keyword.arg == "transport" for keyword in node.keywords)
            ):
                bare.append(f"{name}:{node.lineno}")
    assert bare == [], "pass transport=closing_transport() (or the injected transport)"


async def test_a_cancelled_handshake_on_the_closing_transport_closes_the_socket() -> None:
    async with httpx2.AsyncClient(transport=closing_transport(), trust_env=False) as client:

        async def send(url: str) -> None:
            await client.get(url)

        await give_up_during_the_handshake(send)


async def test_the_python_client_closes_a_socket_whose_handshake_it_gave_up() -> None:
    async def send(url: str) -> None:
        async with Client(url, api_key="tb_test") as client:
            await client.list_tools()

    await give_up_during_the_handshake(send)


async def test_a_credential_reflected_in_response_headers_stays_out_of_the_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpcore2 traces each response's headers at DEBUG: a probe URL that moved keeping ``?api_key=…`` in
    its ``Location``, or a 401 whose challenge quotes the token, put the credential in the log of a
    process logging at DEBUG (found by the outside secrets probe, ``connections test`` on such a URL)."""
    key = "reflected-CANARY-3c9e51"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [
            (b"www-authenticate", f'Bearer error="invalid_token", got="{key}"'.encode()),
            (b"location", f"https://moved.example/me?api_key={key}".encode()),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    caplog.set_level(logging.DEBUG)
    with loopback_socket() as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/me"
        with uvicorn_thread(app, sock):
            async with httpx2.AsyncClient(transport=closing_transport(), trust_env=False) as client:
                assert (await client.get(url)).status_code == 401
    traced = [r.getMessage() for r in caplog.records if r.name.startswith("httpcore2")]
    assert any("receive_response_headers.complete" in m and "401" in m for m in traced), traced
    assert key not in "\n".join(traced)
