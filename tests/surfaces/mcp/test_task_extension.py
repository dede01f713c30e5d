"""Tasks of the 2026-07-28 extension (``io.modelcontextprotocol/tasks``, SEP-2663) through toolbridge.

The upstream is ext_task_server.py: FastMCP with ``fastmcp-tasks`` (the extension's server side) over
streamable HTTP in the stateless era, in a process and virtual environment of its own
(tests/.venvs/fastmcp-tasks, made with uv on first use; ``make node`` makes it too). toolbridge serves it
on a real socket (uvicorn); the agents speak plain JSON-RPC in the 2026-07-28 era, each request with its
own envelope, declaring the extension or not.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests._venvs import venv_python
from tests.connectors.mcp.conftest import python_http
from toolbridge import Hub
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer
from toolbridge.hub import Limits
from toolbridge.surfaces.mcp import _tasks

from .test_cancellation import served_over_http
from .test_tasks import _answer, legacy_session

pytestmark = pytest.mark.anyio
SERVER = Path(__file__).with_name("ext_task_server.py")
SPEC = ("fastmcp-tasks==4.1.4", "fastmcp-slim==4.1.4", "mcp==2.3.0")
EXTENSION = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"
Ask = Callable[..., Awaitable[dict[str, Any]]]


def tasks_python() -> str:
    """The interpreter of tests/.venvs/fastmcp-tasks."""
    return venv_python("fastmcp-tasks", SPEC)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with python_http(SERVER, python=tasks_python(), env={"FASTMCP_LOG_LEVEL": "WARNING"}) as url:
        yield url


@asynccontextmanager
async def toolbridge(url: str, limits: Limits | None = None) -> AsyncIterator[tuple[Hub, str, str]]:
    """toolbridge federating the upstream as ``ext`` (stateless era); its hub, URL and an agent key."""
    hub = Hub(limits=limits)
    hub.add_connector(McpConnector("ext", HttpServer(url, protocol=MODERN)))
    async with served_over_http(hub) as (served, key):
        yield hub, served, key


@asynccontextmanager
async def agent(url: str, key: str | None, *, tasks: bool = True) -> AsyncIterator[Ask]:
    """A 2026-07-28 agent; ``ask(method, params)`` is one request, declaring the tasks extension when
    ``tasks`` (and elicitation), its routing headers as the era has them."""
    capabilities: dict[str, Any] = {"elicitation": {}}
    if tasks:
        capabilities["extensions"] = {EXTENSION: {}}
    envelope = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "agent", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }
    ids = iter(range(1, 10_000))
    head = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": MODERN}
    if key is not None:
        head["Authorization"] = f"Bearer {key}"
    async with httpx2.AsyncClient(timeout=patience(30)) as http:

        async def ask(method: str, params: dict[str, Any], **extra: str) -> dict[str, Any]:
            body = {
                "jsonrpc": "2.0",
                "id": next(ids),
                "method": method,
                "params": {**params, "_meta": {**params.get("_meta", {}), **envelope}},
            }
            headers = {**head, "Mcp-Method": method}
            name = params.get("name", params.get("taskId"))
            if isinstance(name, str):
                headers["Mcp-Name"] = name
            headers.update(extra)
            return _answer(await http.post(url, json=body, headers=headers))

        yield ask


async def until(ask: Ask, task_id: str, *statuses: str) -> dict[str, Any]:
    """``tasks/get`` of ``task_id`` until its status is one of ``statuses``; that answer."""
    with anyio.fail_after(patience(30)):
        while True:
            got = await ask("tasks/get", {"taskId": task_id})
            assert "result" in got, got
            if got["result"]["status"] in statuses:
                return got["result"]
            await anyio.sleep(0.05)


def _task(answer: dict[str, Any]) -> dict[str, Any]:
    """A task's fields that do not change between a direct answer and toolbridge's (no id, times, meta)."""
    kept = ("taskId", "createdAt", "lastUpdatedAt", "_meta")
    return {k: v for k, v in answer.items() if k not in kept}


async def test_a_declared_task_passes_through_as_it_does_directly(upstream: str) -> None:
    """The same calls and polls, directly and through toolbridge: the same answers but for the task id
    (``ext/<upstream id>``) and ``_meta``; toolbridge declares the extension while its upstream does."""
    answers: dict[str, list[dict[str, Any]]] = {}
    async with toolbridge(upstream) as (hub, url, key):
        for target, where, name, auth in (
            (upstream, "direct", "echo", None),
            (url, "proxied", "ext.echo", key),
        ):
            async with agent(target, auth) as ask:
                discovered = (await ask("server/discover", {}))["result"]
                created = (await ask("tools/call", {"name": name, "arguments": {"text": "hi"}}))["result"]
                done = await until(ask, created["taskId"], "completed", "failed")
                answers[where] = [discovered["capabilities"]["extensions"][EXTENSION], created, done]
        await hub.audit.flush()
        rows = [(r.entry.tool, r.entry.outcome) for r in await hub.audit.tail(50)]
    direct, proxied = answers["direct"], answers["proxied"]
    assert proxied[0] == direct[0] == {}
    assert proxied[1]["resultType"] == "task" and proxied[1]["taskId"] == f"ext/{_upstream_id(proxied[1])}"
    assert _task(proxied[1]) == _task(direct[1])
    assert proxied[2]["taskId"] == proxied[1]["taskId"]
    assert _task(proxied[2]) == _task(direct[2])
    assert proxied[2]["result"]["content"] == [{"type": "text", "text": "hi"}]
    assert ("ext.echo", "ok") in rows and ("tasks/get ext", "ok") in rows


def _upstream_id(created: dict[str, Any]) -> str:
    return str(created["taskId"]).removeprefix("ext/")


async def test_an_agent_that_does_not_declare_the_extension_gets_the_result(upstream: str) -> None:
    """Without the extension in its request the upstream is not told it either: the call answers its
    result, and the task methods answer -32021 naming the capability."""
    async with toolbridge(upstream) as (_, url, key), agent(url, key, tasks=False) as ask:
        called = (await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "plain"}}))["result"]
        got = await ask("tasks/get", {"taskId": "ext/anything"})
    assert called["resultType"] == "complete"
    assert called["content"] == [{"type": "text", "text": "plain"}]
    assert got["error"]["code"] == -32021
    assert got["error"]["data"] == {"requiredCapabilities": {"extensions": {EXTENSION: {}}}}


async def test_a_task_asks_through_tasks_get_and_is_answered_with_tasks_update(upstream: str) -> None:
    async with toolbridge(upstream) as (hub, url, key), agent(url, key) as ask:
        created = (await ask("tools/call", {"name": "ext.ask_name", "arguments": {}}))["result"]
        waiting = await until(ask, created["taskId"], "input_required")
        [(asked_key, asked)] = waiting["inputRequests"].items()
        answer = {"action": "accept", "content": {"name": "Luca"}}
        updated = await ask(
            "tasks/update", {"taskId": created["taskId"], "inputResponses": {asked_key: answer}}
        )
        done = await until(ask, created["taskId"], "completed", "failed")
        await hub.audit.flush()
        rows = [r.entry for r in await hub.audit.tail(50)]
    updates = [(e.outcome, e.principal) for e in rows if e.tool == "tasks/update ext"]
    assert updates == [("ok", "agent:agent")]  # one audit row for the one request
    assert asked["method"] == "elicitation/create" and asked["params"]["message"] == "Your name?"
    assert updated["result"]["resultType"] == "complete"
    assert done["result"]["content"] == [{"type": "text", "text": "hello Luca"}]


async def test_a_task_is_cancelled_upstream(upstream: str) -> None:
    async with toolbridge(upstream) as (_, url, key), agent(url, key) as ask:
        created = await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "x", "seconds": 60}})
        task_id = created["result"]["taskId"]
        cancelled = await ask("tasks/cancel", {"taskId": task_id})
        ended = await until(ask, task_id, "cancelled", "completed", "failed")
    assert cancelled["result"]["resultType"] == "complete"
    assert ended["status"] == "cancelled"


async def test_a_task_is_its_creators_only(upstream: str) -> None:
    """Another agent, the same agent in the other era, and the methods the extension does not have
    get clear errors; the upstream is never asked about a task that is not the caller's."""
    async with toolbridge(upstream) as (hub, url, key):
        other = await hub.agents.create("other", ["*"])
        async with agent(url, key) as ask, agent(url, other) as ask_other:
            created = (await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "mine"}}))["result"]
            task_id = created["taskId"]
            theirs = await ask_other("tasks/get", {"taskId": task_id})
            cancel_theirs = await ask_other("tasks/cancel", {"taskId": task_id})
            result = await ask("tasks/result", {"taskId": task_id})
            listed = await ask("tasks/list", {})
            misrouted = await ask("tasks/get", {"taskId": task_id}, **{"Mcp-Name": "ext/another"})
            mine = await until(ask, task_id, "completed")
        async with legacy_session(url, key) as legacy:
            old_era = await legacy("tasks/get", {"taskId": task_id})
    assert theirs["error"]["code"] == cancel_theirs["error"]["code"] == -32602
    assert f"unknown task {task_id!r}" in theirs["error"]["message"]
    assert result["error"]["code"] == listed["error"]["code"] == -32601
    assert "tasks/get" in result["error"]["message"]
    assert misrouted["error"]["code"] == -32020  # (its routing header names another task)
    assert mine["result"]["content"] == [{"type": "text", "text": "mine"}]
    assert old_era["error"]["code"] == -32602 and "2026-07-28" in old_era["error"]["message"]


async def test_a_completed_tasks_result_is_capped_as_a_call_result_is(upstream: str) -> None:
    async with toolbridge(upstream, Limits(max_result_bytes=1000)) as (_, url, key), agent(url, key) as ask:
        small = await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "x", "repeat": 100}})
        large = await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "x", "repeat": 5000}})
        whole = await until(ask, small["result"]["taskId"], "completed")
        cut = await until(ask, large["result"]["taskId"], "completed")
    assert whole["result"]["content"] == [{"type": "text", "text": "x" * 100}]
    text = cut["result"]["content"][0]["text"]
    assert text.startswith("[toolbridge: result truncated: showing 1,000 of ")
    assert len(text.encode()) < 1300
    assert cut["result"]["isError"] is True  # (the tool declares an output schema a cut result misses)


async def test_the_route_tables_bounds_and_keyed_replays_hold_for_these_tasks(
    upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One table for both eras: past its size a finished task is forgotten first, then the oldest, and
    said to be; a call sent again with its idempotency key answers the same task (no second one)."""
    monkeypatch.setattr(_tasks, "MAX_TASKS", 2)
    keyed = {
        "name": "ext.echo",
        "arguments": {"text": "k", "seconds": 60},
        "_meta": {"idempotencyKey": "k-1"},
    }
    async with toolbridge(upstream) as (hub, url, key), agent(url, key) as ask:
        running = (await ask("tools/call", keyed))["result"]
        finished = (await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "f"}}))["result"]
        await until(ask, finished["taskId"], "completed")
        again = (await ask("tools/call", keyed))["result"]
        await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "3", "seconds": 60}})
        kept = await ask("tasks/get", {"taskId": running["taskId"]})
        forgotten = await ask("tasks/get", {"taskId": finished["taskId"]})
        await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "4", "seconds": 60}})
        oldest = await ask("tasks/get", {"taskId": running["taskId"]})
        await hub.audit.flush()
        outcomes = [r.entry.outcome for r in await hub.audit.tail(50) if r.entry.tool == "ext.echo"]
    assert again["taskId"] == running["taskId"] and again["resultType"] == "task"
    assert kept["result"]["status"] == "working"
    for answer, task in ((forgotten, finished), (oldest, running)):
        assert answer["error"]["code"] == -32602
        assert answer["error"]["message"].startswith(f"task {task['taskId']!r} was forgotten: toolbridge")
    assert outcomes.count("replayed") == 1


async def test_a_task_of_a_stdio_upstream_passes_through() -> None:
    """The same over stdio (2026-07-28): no routing headers upstream, the same route table."""
    hub = Hub()
    stdio = StdioServer(
        tasks_python(), (str(SERVER), "stdio"), protocol=MODERN, env={"FASTMCP_LOG_LEVEL": "WARNING"}
    )
    hub.add_connector(McpConnector("ext", stdio))
    async with served_over_http(hub) as (url, key), agent(url, key) as ask:
        created = (await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "stdio"}}))["result"]
        done = await until(ask, created["taskId"], "completed", "failed")
        running = await ask("tools/call", {"name": "ext.echo", "arguments": {"text": "x", "seconds": 60}})
        cancelled = await ask("tasks/cancel", {"taskId": running["result"]["taskId"]})
        ended = await until(ask, running["result"]["taskId"], "cancelled", "completed", "failed")
    assert created["resultType"] == "task" and created["taskId"].startswith("ext/")
    assert done["result"]["content"] == [{"type": "text", "text": "stdio"}]
    assert cancelled["result"]["resultType"] == "complete" and ended["status"] == "cancelled"


def test_the_upstream_environment_pins_the_sdk_toolbridge_pins() -> None:
    """The upstream's SDK is the one toolbridge runs on (mcp 2.3.0), so both sides speak one draft."""
    pinned = subprocess.run(
        [tasks_python(), "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    ).stdout.strip()
    assert pinned == "2.3.0"
