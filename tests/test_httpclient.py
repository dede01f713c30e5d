"""toolbridge's own httpx2 clients close a socket whose TLS handshake is cancelled.

httpcore2 closes it only when ``start_tls`` raises an ``Exception``: a cancelled handshake (a call's
deadline, a worker stopping) left the socket to the garbage collector, whose ``ResourceWarning`` then
failed whatever test ran next. :func:`toolbridge._httpclient.closing_transport` is the fix; these tests
check it and that every client toolbridge builds for itself runs on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import httpx2
import pytest

import toolbridge
from tests._handshake import give_up_during_the_handshake
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
