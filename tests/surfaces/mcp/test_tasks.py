"""Tasks (the 2025-11-25 extension) pass through toolbridge when the agent and the upstream declare them.

The upstream is server-everything (the official TypeScript SDK serves its ``simulate-research-query``
tool as a task), federated over stdio; the agent is the official TypeScript client (task_agent.mjs:
the SDK's own task driver ``callToolStream``, then ``tasks/get``, ``tasks/list``, ``tasks/cancel`` and
an id it was never given). The same agent run against server-everything directly gives the answers
toolbridge must relay: the same capability, task support, statuses and result, with the task ids
mapped to ``fid/<upstream id>`` and each agent action audited once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.connectors.mcp.conftest import (
    EVERYTHING,
    MODULES,
    NODE,
    PRELOAD,
    NodeHttp,
    everything_stdio,
    free_port,
    require,
)
from toolbridge import Hub
from toolbridge.connectors.mcp import McpConnector, StdioServer

from .conftest import serve
from .test_cancellation import served_over_http

pytestmark = pytest.mark.anyio
AGENT = __file__.replace("test_tasks.py", "task_agent.mjs")
SDK = MODULES / "@modelcontextprotocol" / "sdk"
TOOL = "simulate-research-query"
FIDELITY = Path(__file__).with_name("fidelity_server.py")


@asynccontextmanager
async def toolbridge(server: StdioServer) -> AsyncIterator[tuple[Hub, str, str]]:
    """toolbridge federating ``server`` as ``fid`` on a real socket: the hub, its URL and an agent key."""
    hub = Hub()
    hub.add_connector(McpConnector("fid", server))
    async with served_over_http(hub) as (url, key):
        yield hub, url, key


async def agent(url: str, key: str, tool: str) -> dict[str, Any]:
    with anyio.fail_after(patience(120)):
        done = await anyio.run_process([str(NODE), AGENT, url, key, str(SDK), tool], check=False)
    assert done.returncode == 0, done.stderr.decode()
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def report(seen: dict[str, Any]) -> str:
    result = next(m["result"] for m in seen["messages"] if m["type"] == "result")
    return str(result["content"][0]["text"])


async def test_a_task_passes_through_as_the_upstream_runs_it() -> None:
    require(NODE, EVERYTHING, PRELOAD, SDK)
    node = NodeHttp(free_port())
    node.start()
    try:
        direct = await agent(node.url, "-", TOOL)
    finally:
        node.stop()
    async with toolbridge(everything_stdio()) as (hub, url, key):
        seen = await agent(url, key, f"fid.{TOOL}")
        await hub.audit.flush()
        rows = [r.entry for r in await hub.audit.tail(50)]
    assert (
        seen["capabilities"]
        == direct["capabilities"]
        == {
            "list": {},
            "cancel": {},
            "requests": {"tools": {"call": {}}},
        }
    )
    assert seen["execution"] == direct["execution"] == {"taskSupport": "required"}
    created = seen["messages"][0]
    assert created["type"] == "taskCreated"
    assert created["taskId"].startswith("fid/")
    assert {m["taskId"] for m in seen["messages"] if "taskId" in m} == {created["taskId"]}
    statuses = [m["status"] for m in seen["messages"] if "status" in m]
    assert statuses[-1] == "completed" == direct["get"]["status"] == seen["get"]["status"]
    assert report(seen) == report(direct)  # the upstream's result, as tasks/result gave it
    assert seen["get"]["taskId"] == created["taskId"]
    assert {"taskId": created["taskId"], "status": "completed"} in seen["list"]
    assert all(t["taskId"].startswith("fid/") for t in seen["list"])
    assert seen["created"]["taskId"].startswith("fid/") and seen["created"]["status"] == "working"
    assert (seen["cancelled"]["status"], seen["afterCancel"]["status"]) == ("cancelled", "cancelled")
    assert (direct["cancelled"]["status"], direct["afterCancel"]["status"]) == ("cancelled", "cancelled")
    done = {"taskId": created["taskId"], "status": "completed"}  # notifications/tasks/status, relayed
    assert done in seen["statuses"]
    assert "completed" in {s["status"] for s in direct["statuses"]}
    assert {s["taskId"] for s in seen["statuses"]} <= {created["taskId"], seen["created"]["taskId"]}
    assert seen["unknown"]["code"] == direct["unknown"]["code"] == -32602
    tools = [r.tool for r in rows if r.principal == "agent:agent"]
    assert tools.count(f"fid.{TOOL}") == 2  # the two task-augmented calls, once each
    assert tools.count("tasks/cancel fid") == 1
    assert tools.count("tasks/list") == 1
    assert tools.count("tasks/result fid") == 1
    assert tools.count("tasks/get fid") >= 3  # the driver's polls, then the two gets
    assert {r.outcome for r in rows if r.tool.endswith(" fid") or r.tool == "tasks/list"} == {"ok"}
    unknown = [(r.outcome, r.error_code) for r in rows if r.tool == "tasks/get nobody"]
    assert unknown == [("error", "not_found")]  # an id it was never given: audited, refused


async def test_another_agent_cannot_see_or_touch_a_task() -> None:
    async with toolbridge(everything_stdio()) as (hub, url, key):
        seen = await agent(url, key, f"fid.{TOOL}")
        async with legacy_session(url, await hub.agents.create("other", ["*"])) as ask:
            got = await ask("tasks/get", {"taskId": seen["created"]["taskId"]})
            cancelled = await ask("tasks/cancel", {"taskId": seen["created"]["taskId"]})
            listed = await ask("tasks/list", {})
        await hub.audit.flush()
        rows = [
            (r.entry.tool, r.entry.outcome)
            for r in await hub.audit.tail(50)
            if r.entry.principal == "agent:other"
        ]
    assert got["error"]["code"] == cancelled["error"]["code"] == -32602
    assert listed["result"]["tasks"] == []
    assert rows == [("tasks/get fid", "error"), ("tasks/cancel fid", "error"), ("tasks/list", "ok")]


@pytest.mark.parametrize("upstream", ["python-sdk", "everything"])
async def test_a_call_asking_for_a_task_runs_as_any_call_where_tasks_are_not_taken(upstream: str) -> None:
    """The Python SDK's server declares no tasks (toolbridge then declares none); server-everything's
    ``echo`` does not support them. Either way the call is run and answered at once."""
    server = StdioServer(sys.executable, (str(FIDELITY),), protocol="2025-11-25")
    tool, arguments, text = "fid.peek", {}, "peeked"
    if upstream == "everything":
        server, tool, arguments, text = everything_stdio(), "fid.echo", {"message": "hi"}, "Echo: hi"
    async with toolbridge(server) as (_, url, key), legacy_session(url, key) as ask:
        capabilities = (await ask("initialize", None))["result"]["capabilities"]
        called = await ask("tools/call", {"name": tool, "arguments": arguments, "task": {"ttl": 60000}})
    assert ("tasks" in capabilities) is (upstream == "everything")
    assert called["result"]["content"][0]["text"] == text
    assert "task" not in called["result"]


@asynccontextmanager
async def legacy_session(url: str, key: str) -> AsyncIterator[Callable[..., Awaitable[dict[str, Any]]]]:
    """A 2025-11-25 session over plain JSON-RPC (a client may send whatever it likes); yields ``ask``
    (``ask("initialize", None)`` gives the handshake's answer; ``ask.stream()`` the session's stream)."""
    head = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "o", "version": "1"}}
    ids = iter(range(1, 1000))
    async with httpx2.AsyncClient(timeout=patience(30)) as http:
        opened = await http.post(
            url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}, headers=head
        )
        head |= {"Mcp-Session-Id": opened.headers["mcp-session-id"], "Mcp-Protocol-Version": "2025-11-25"}
        await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=head)

        async def ask(method: str, params: Any) -> dict[str, Any]:
            if method == "initialize":
                return _answer(opened)
            body = {"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params}
            return _answer(await http.post(url, json=body, headers=head))

        @asynccontextmanager
        async def stream() -> AsyncIterator[AsyncIterator[str]]:
            """The session's ``GET`` stream, line by line (``ask.stream()``)."""
            async with http.stream("GET", url, headers={**head, "Accept": "text/event-stream"}) as got:
                yield got.aiter_lines()

        ask.stream = stream  # type: ignore[attr-defined]
        yield ask


def _answer(response: httpx2.Response) -> dict[str, Any]:
    text = response.text
    if text.lstrip().startswith("{"):
        return dict(json.loads(text))
    data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
    return dict(json.loads(data[-1]))


async def test_a_2026_07_28_agent_gets_no_tasks_of_a_handshake_era_upstream() -> None:
    """The 2025-11-25 tasks do not cross eras: a 2026-07-28 agent's ``task`` is ignored (the call runs as
    any call), toolbridge declares no tasks extension while no upstream does, and the extension's
    methods need the request to declare it (tests/surfaces/mcp/test_task_extension.py has the
    extension passed through)."""
    hub = Hub()
    hub.add_connector(McpConnector("ev", everything_stdio()))
    async with serve(hub) as served:
        discovered = (await served.modern("server/discover")).json()["result"]
        called = await served.modern(
            "tools/call", {"name": "ev.echo", "arguments": {"message": "hi"}, "task": {}}
        )
        got = (await served.modern("tasks/get", {"taskId": "ev/1"})).json()
        listed = (await served.modern("tasks/list", {})).json()
    assert "tasks" not in discovered["capabilities"]
    assert "io.modelcontextprotocol/tasks" not in discovered["capabilities"].get("extensions", {})
    assert called.json()["result"]["content"][0]["text"] == "Echo: hi"
    assert got["error"]["code"] == -32021
    assert got["error"]["data"] == {
        "requiredCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}}
    }
    assert listed["error"]["code"] == -32601
