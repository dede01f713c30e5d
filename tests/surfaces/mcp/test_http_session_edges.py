"""A 2025-11-25 session's edges over real HTTP: request ids reused while in flight, and GET streams resumed.

toolbridge is served by uvicorn on a loopback socket (the GET stream is a real event stream), and spoken
to with raw JSON-RPC, as a client that gets these edges wrong would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub
from toolbridge.surfaces.mcp import McpSurface

from .conftest import ENVELOPE, LEGACY

pytestmark = pytest.mark.anyio

JSON = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@contextmanager
def served(hub: Hub) -> Iterator[tuple[str, Hub]]:
    surface = McpSurface(hub)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with hub, surface:
            yield

    sock = loopback_socket()
    with uvicorn_thread(Starlette(routes=surface.routes(), lifespan=lifespan), sock, lifespan="on"):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp", hub


async def session(http: httpx2.AsyncClient, url: str, key: str) -> dict[str, str]:
    """Open a session; the headers its requests carry."""
    params = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    auth = {**JSON, "authorization": f"Bearer {key}"}
    opened = await http.post(
        url, headers=auth, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    )
    assert opened.status_code == 200, opened.text
    headers = {**auth, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
    done = await http.post(
        url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert done.status_code == 202
    return headers


def echo_hub() -> Hub:
    """A hub with one tool, ``demo.echo``."""
    hub = Hub()

    @hub.tool(connector="demo")
    def echo(text: str) -> str:
        """Say it back."""
        return text

    return hub


def call(request_id: int, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


@pytest.mark.parametrize("second_id", [5, "5"])
async def test_a_request_id_reused_while_its_request_runs_is_refused_and_the_first_is_answered(
    second_id: int | str,
) -> None:
    """The second request with the id took the first one's answer stream: the first was never answered
    (its client waited until its timeout, though the tool had run). ``"5"`` is the same id as ``5`` to
    the SDK (its transport keys answers by ``str(id)``, its dispatcher reads ``"5"`` as 5): refused too."""
    hub = Hub()
    entered, release = threading.Event(), threading.Event()  # the server runs in a thread of its own

    @hub.tool(connector="slow")
    async def wait() -> str:
        """Wait until released."""
        entered.set()
        await anyio.to_thread.run_sync(release.wait, 10)
        return "done"

    with served(hub) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            headers = await session(http, url, key)
            first: dict[str, httpx2.Response] = {}

            async def run_first() -> None:
                first["answer"] = await http.post(url, headers=headers, json=call(5, "slow.wait", {}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_first)
                assert await anyio.to_thread.run_sync(entered.wait, 5), "the tool was not called"
                again = await http.post(
                    url, headers=headers, json={"jsonrpc": "2.0", "id": second_id, "method": "tools/list"}
                )
                release.set()
            assert again.status_code == 400, again.text
            error = again.json()
            assert error["id"] == second_id and error["error"]["code"] == -32600, error
            assert "still in flight" in error["error"]["message"]
            answer = first["answer"]
            assert answer.status_code == 200 and answer.json()["result"]["content"][0]["text"] == "done"
            # once answered, the id may be used again (each POST carries its own answer)
            reused = await http.post(
                url, headers=headers, json={"jsonrpc": "2.0", "id": 5, "method": "tools/list"}
            )
            assert reused.status_code == 200 and reused.json()["id"] == 5


async def test_a_get_stream_with_last_event_id_opens_as_a_new_stream() -> None:
    """toolbridge gives its events no ids, so there is nothing to replay: the SDK's transport sent no
    answer at all (500) to a GET carrying Last-Event-ID."""
    with served(echo_hub()) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            headers = await session(http, url, key)
            stream = {**headers, "accept": "text/event-stream", "last-event-id": "42"}
            async with http.stream("GET", url, headers=stream) as response:
                assert response.status_code == 200, await response.aread()
                assert response.headers["content-type"].startswith("text/event-stream")
            # the session still serves
            answer = await http.post(url, headers=headers, json=call(2, "demo.echo", {"text": "hi"}))
            assert json.loads(answer.text)["result"]["content"][0]["text"] == "hi"


@pytest.mark.parametrize("params", [[1, 2], "x", None])
async def test_params_that_are_not_an_object_get_invalid_params_with_the_request_id(params: Any) -> None:
    """The SDK answered a session's request with -32602, ``id: null`` and a pydantic dump, and a
    stateless one with -32600 ``id: null``: a client could not tell which request failed, nor why
    (found by an outside MCP bad-input probe)."""
    with served(echo_hub()) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            stateless = {**JSON, "authorization": f"Bearer {key}", "mcp-protocol-version": "2026-07-28"}
            legacy = await session(http, url, key)
            for headers in (legacy, stateless):
                body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params}
                answer = await http.post(url, headers=headers, json=body)
                assert answer.status_code == 400, answer.text
                error = answer.json()
                assert error["id"] == 9 and error["error"]["code"] == -32602, error
                assert "takes params as an object" in error["error"]["message"]
                assert '"arguments"' in error["error"]["message"]  # what to send instead
            answer = await http.post(url, headers=legacy, json=call(2, "demo.echo", {"text": "hi"}))
            assert json.loads(answer.text)["result"]["content"][0]["text"] == "hi"  # objects still served


async def opened_with(http: httpx2.AsyncClient, url: str, key: str, version: str) -> dict[str, str]:
    """Open a session of ``version``; its requests' headers (a 2025-03-26 client sends no version header:
    MCP-Protocol-Version came with 2025-06-18)."""
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    auth = {**JSON, "authorization": f"Bearer {key}"}
    opened = await http.post(
        url, headers=auth, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}
    )
    assert opened.json()["result"]["protocolVersion"] == version, opened.text
    headers = {**auth, "mcp-session-id": opened.headers["mcp-session-id"]}
    if version != "2025-03-26":
        headers["mcp-protocol-version"] = version
    done = await http.post(
        url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
    )
    assert done.status_code == 202
    return headers


async def test_a_batch_on_a_2025_03_26_session_is_served_as_its_messages() -> None:
    """2025-03-26 requires servers to accept JSON-RPC batches; toolbridge refused them on every session
    (found by an outside MCP probe). The answers come as one JSON array, in the batch's order."""
    ping = {"jsonrpc": "2.0", "id": "p", "method": "ping"}
    told = {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
    with served(echo_hub()) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            headers = await opened_with(http, url, key, "2025-03-26")
            answer = await http.post(
                url, headers=headers, json=[ping, call(2, "demo.echo", {"text": "hi"}), told]
            )
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            first, second = answer.json()
            assert first == {"jsonrpc": "2.0", "id": "p", "result": {}}
            assert second["id"] == 2 and second["result"]["content"][0]["text"] == "hi"
            only_told = await http.post(url, headers=headers, json=[told, told])
            assert only_told.status_code == 202 and only_told.content == b""
            # each message is checked as it would be alone; initialize never comes in a batch
            wrong = [
                {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": [1]},
                {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}},
                call(5, "demo.ech", {"text": "x"}),
                7,
            ]
            errors = (await http.post(url, headers=headers, json=wrong)).json()
            assert [(e["id"], e["error"]["code"]) for e in errors] == [
                (3, -32602),
                (4, -32600),
                (5, -32602),
                (None, -32600),
            ]
            assert "initialize is sent alone" in errors[1]["error"]["message"]
            assert (await http.delete(url, headers=headers)).status_code == 200
            gone = await http.post(url, headers=headers, json=[ping])
            assert gone.status_code == 404, gone.text  # as for one message: open a new session


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28"])
async def test_a_batch_of_another_version_is_refused_saying_what_to_send(version: str) -> None:
    """Versions after 2025-03-26 removed batches: the refusal said "batches are not accepted", not that
    the messages go one per POST."""
    with served(echo_hub()) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            if version == "2026-07-28":
                headers = {**JSON, "authorization": f"Bearer {key}", "mcp-protocol-version": version}
            else:
                headers = await opened_with(http, url, key, version)
            answer = await http.post(
                url, headers=headers, json=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]
            )
            assert answer.status_code == 400, answer.text
            error = answer.json()
            assert error["id"] is None and error["error"]["code"] == -32600, error
            assert "'2025-03-26'" in error["error"]["message"]
            assert "send each JSON-RPC message on its own" in error["error"]["message"]


def routed(headers: dict[str, str], method: str) -> dict[str, str]:
    """A stateless request's headers name its method (a session's need not)."""
    return {**headers, "mcp-method": method} if "mcp-session-id" not in headers else headers


MISTYPED = [("tool/call", "tools/call"), ("tools/calls", "tools/call"), ("tools.list", "tools/list")]


async def test_an_unknown_method_is_answered_32601_naming_the_closest_methods() -> None:
    """-32601 said "Method not found" and no more: a client that sent ``tool/call`` could not tell it
    from a server without tools. The code stays -32601; the message names what is served."""
    with served(echo_hub()) as (url, hub):
        key = await hub.agents.create("alice", scopes=["*"])
        async with httpx2.AsyncClient(timeout=10) as http:
            stateless = {**JSON, "authorization": f"Bearer {key}", "mcp-protocol-version": "2026-07-28"}
            legacy = await session(http, url, key)
            for headers, params in ((legacy, {}), (stateless, {"_meta": ENVELOPE})):
                for sent, meant in MISTYPED:
                    body = {"jsonrpc": "2.0", "id": 5, "method": sent, "params": params}
                    error = (await http.post(url, headers=routed(headers, sent), json=body)).json()
                    assert error["id"] == 5 and error["error"]["code"] == -32601, error
                    assert f"did you mean '{meant}'" in error["error"]["message"], error
                    assert error["error"]["data"] == sent
                body = {"jsonrpc": "2.0", "id": 6, "method": "zzzz/qqqq", "params": params}
                error = (await http.post(url, headers=routed(headers, "zzzz/qqqq"), json=body)).json()
                assert error["error"] == {"code": -32601, "message": "Method not found", "data": "zzzz/qqqq"}
