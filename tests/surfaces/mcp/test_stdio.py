"""serve_stdio in a subprocess, driven by the official MCP client over stdin/stdout, in both eras."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError, StdioServerParameters

from tests._patience import patience

pytestmark = pytest.mark.anyio

APP = Path(__file__).with_name("stdio_app.py")


def server(*scopes: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(APP), *scopes], cwd=str(APP.parent))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_stdio_lists_and_calls_tools(mode: str) -> None:
    async with Client(server(), mode=mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["demo.add", "demo.echo", "demo.hang"]
        result = await client.call_tool("demo.add", {"a": 1, "b": 2})
        assert result.structured_content == {"sum": 3}
        with pytest.raises(MCPError, match="did you mean 'demo.echo'"):
            await client.call_tool("demo.ech", {"text": "x"})


async def test_stdio_serves_the_principals_view() -> None:
    async with Client(server("demo.*:read"), mode="legacy") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["demo.echo"]
        with pytest.raises(MCPError, match="no tool named 'demo.add'"):  # unseen is missing
            await client.call_tool("demo.add", {"a": 1, "b": 2})


def exchange(lines: list[str], answers: int | None = None) -> list[Any]:
    """The server's first ``answers`` answer lines (one per line by default), from a server started for
    ``lines``."""
    server = subprocess.Popen(
        [sys.executable, str(APP)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(APP.parent),
    )
    watchdog = threading.Timer(patience(120), server.kill)  # a server that never answers fails the test
    watchdog.start()
    try:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write("\n".join(lines) + "\n")
        server.stdin.flush()  # stdin stays open: at its end a server may stop before answering the rest
        found = [json.loads(server.stdout.readline() or "null") for _ in range(answers or len(lines))]
    finally:
        watchdog.cancel()
        server.kill()
        stderr = server.communicate()[1]
    assert None not in found, stderr
    return found


def test_a_line_that_is_no_message_is_answered_with_its_error() -> None:
    """The SDK's stdio server dropped such lines without a word (a client waited for ever); over HTTP the
    same bodies are answered -32700 / -32600."""
    lines = [
        '{"jsonrpc": "2.0", "id": 1,',  # cut short
        json.dumps({"jsonrpc": "1.0", "id": 2, "method": "ping"}),
        json.dumps([{"jsonrpc": "2.0", "id": 3, "method": "ping"}]),  # a batch
        json.dumps({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}),  # read as a notification
        json.dumps({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}),
        json.dumps({"jsonrpc": "2.0", "id": None, "method": "tools/list"}),
        json.dumps({"jsonrpc": "2.0", "id": 4, "method": "ping"}),  # still served after them
    ]
    answers = exchange(lines)
    assert [(a["id"], a.get("error", {}).get("code")) for a in answers] == [
        (None, -32700),
        (2, -32600),
        (None, -32600),
        (None, -32600),
        (None, -32600),
        (None, -32600),
        (4, None),
    ]
    assert "EOF while parsing" in answers[0]["error"]["message"]
    assert (
        "send each JSON-RPC message on its own" in answers[2]["error"]["message"]
    )  # a batch, before initialize


def test_params_that_are_not_an_object_get_invalid_params_with_the_request_id() -> None:
    """Over stdio they were -32600 with ``id: null`` (and ``"params": null`` was taken for no params),
    while over HTTP the same requests are -32602 with their id and what to send (found by an outside MCP
    bad-input probe)."""
    bodies: list[Any] = [[1], "x", None, 5]
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/list", "params": p})
        for i, p in enumerate(bodies)
    ]
    lines.append(json.dumps({"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": [1]}))
    lines.append(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {}}))  # still served
    answers = exchange(lines)
    assert [(a["id"], a.get("error", {}).get("code")) for a in answers] == [
        (0, -32602),
        (1, -32602),
        (2, -32602),
        (3, -32602),
        ("c", -32602),
        (9, None),
    ]
    assert "not an array" in answers[0]["error"]["message"]
    assert "not null" in answers[2]["error"]["message"]
    assert '"arguments"' in answers[4]["error"]["message"]  # what to send instead


def opening(version: str) -> list[str]:
    """The lines that open a connection of ``version`` (answered with one line)."""
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    return [
        json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ]


def test_a_batch_on_a_2025_03_26_connection_is_served_as_its_messages() -> None:
    """2025-03-26 requires servers to accept JSON-RPC batches (a line may be one); they were refused on
    every connection (found by an outside MCP probe). A batch is answered with one line, a JSON array in
    the batch's order; one of notifications only is not answered."""
    told = {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
    add = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "demo.add", "arguments": {"a": 1, "b": 2}},
    }
    wrong = [
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": [1]},
        {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 5, "method": "ping"},
        {"jsonrpc": "2.0", "id": 5, "method": "ping"},  # the same id twice
        7,
    ]
    lines = [
        *opening("2025-03-26"),
        json.dumps([{"jsonrpc": "2.0", "id": "p", "method": "ping"}, add, told]),
        json.dumps([told]),
        json.dumps(wrong),
        json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    ]
    opened, *rest = exchange(lines, answers=4)
    assert opened["result"]["protocolVersion"] == "2025-03-26"
    by_first_id = {(a[0] if isinstance(a, list) else a)["id"]: a for a in rest}  # (they come in any order)
    served, refused, last = by_first_id["p"], by_first_id[3], by_first_id[9]
    assert served[0] == {"jsonrpc": "2.0", "id": "p", "result": {}}
    assert served[1]["id"] == 2 and served[1]["result"]["structuredContent"] == {"sum": 3}
    assert [(e["id"], e.get("error", {}).get("code")) for e in refused] == [
        (3, -32602),
        (4, -32600),
        (5, None),
        (5, -32600),
        (None, -32600),
    ]
    assert "initialize is sent alone" in refused[1]["error"]["message"]
    assert last == {"jsonrpc": "2.0", "id": 9, "result": {}}


def test_a_cancelled_request_of_a_batch_is_answered_in_it() -> None:
    """The server sends nothing for a cancelled request: the batch's other answers would wait for ever."""
    calls = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "demo.hang", "arguments": {}}},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "demo.echo", "arguments": {"text": "hi"}},
        },
    ]
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    lines = [*opening("2025-03-26"), json.dumps(calls), json.dumps(cancel)]
    batch = exchange(lines, answers=2)[1]
    assert [(a["id"], a.get("error", {}).get("code")) for a in batch] == [(1, -32800), (2, None)]
    assert batch[1]["result"]["content"][0]["text"] == "hi"


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
def test_a_batch_of_another_version_is_refused_saying_what_to_send(version: str) -> None:
    lines = [*opening(version), json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])]
    error = exchange(lines, answers=2)[1]
    assert error["id"] is None and error["error"]["code"] == -32600, error
    assert "'2025-03-26'" in error["error"]["message"]
    assert "send each JSON-RPC message on its own" in error["error"]["message"]


def test_requests_read_before_the_input_ends_are_answered_before_the_server_stops() -> None:
    """``printf '…tools/call…' | toolbridge mcp``: at the end of stdin the SDK's server cancelled the
    calls in flight, answering "-32000 Connection closed" or nothing at all (found by an outside probe)."""
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    echo = {"name": "demo.echo", "arguments": {"text": "hi"}}
    add = {"name": "demo.add", "arguments": {"a": 1, "b": 2}}
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": echo}),
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": add}),
    ]
    done = subprocess.run(
        [sys.executable, str(APP)],
        input="\n".join(lines) + "\n",  # and then the end of stdin, at once
        capture_output=True,
        text=True,
        cwd=str(APP.parent),
        timeout=patience(120),
    )
    answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines())}
    assert sorted(answers) == [1, 2, 3], (done.stdout, done.stderr)
    assert answers[2]["result"]["content"][0]["text"] == "hi"
    assert answers[3]["result"]["structuredContent"] == {"sum": 3}
    assert done.returncode == 0, done.stderr


def test_an_unknown_method_is_answered_32601_naming_the_closest_methods() -> None:
    """As over HTTP: ``tool/call`` is -32601, its message saying 'tools/call' is served."""
    from tests.surfaces.mcp.test_http_session_edges import MISTYPED

    opening = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    lines = [json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": opening})]
    lines.append(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    lines += [json.dumps({"jsonrpc": "2.0", "id": i, "method": m}) for i, (m, _) in enumerate(MISTYPED, 1)]
    answers = exchange(lines, answers=1 + len(MISTYPED))[1:]
    for answer, (sent, meant) in zip(answers, MISTYPED, strict=True):
        assert answer["error"]["code"] == -32601, answer
        assert f"did you mean '{meant}'" in answer["error"]["message"], answer
        assert answer["error"]["data"] == sent
