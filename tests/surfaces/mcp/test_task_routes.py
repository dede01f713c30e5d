"""What toolbridge remembers of the agents' tasks, and what it relays of them.

The upstream is task_server.mjs (the official TypeScript SDK's task machinery, as server-everything
uses it) over stdio: its ``brief`` tool makes a task with the ttl asked, tells its status before the
``CreateTaskResult`` and (unless held) finishes at once with a text of the size asked. The agent speaks
plain JSON-RPC in the 2025-11-25 era.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests._patience import patience
from tests.connectors.mcp.conftest import MODULES, NODE, require
from toolbridge import Hub
from toolbridge.connectors.mcp import McpConnector, StdioServer
from toolbridge.hub import Limits
from toolbridge.surfaces.mcp import _tasks

from .test_cancellation import served_over_http
from .test_tasks import legacy_session

pytestmark = pytest.mark.anyio
SERVER = Path(__file__).with_name("task_server.mjs")
ASK_AGENT = SERVER.with_name("task_ask_agent.mjs")
Ask = Callable[..., Awaitable[dict[str, Any]]]


@asynccontextmanager
async def agent(limits: Limits | None = None) -> AsyncIterator[tuple[Hub, Ask]]:
    """toolbridge federating task_server.mjs as ``ts``, and a 2025-11-25 agent's ``ask``."""
    require(NODE, MODULES / "@modelcontextprotocol" / "sdk", MODULES / "zod")
    hub = Hub(limits=limits)
    hub.add_connector(McpConnector("ts", StdioServer(str(NODE), (str(SERVER), str(MODULES)))))
    async with served_over_http(hub) as (url, key), legacy_session(url, key) as ask:
        yield hub, ask


async def brief(ask: Ask, **arguments: Any) -> dict[str, Any]:
    """A task of ``ts.brief`` (its ``CreateTaskResult``'s task), or the answer when it is not one."""
    called = await ask("tools/call", {"name": "ts.brief", "arguments": arguments, "task": {"ttl": 60000}})
    task: dict[str, Any] = called["result"]["task"]
    return task


async def test_a_task_result_is_capped_as_a_call_result_is() -> None:
    async with agent(Limits(max_result_bytes=1000)) as (_, ask):
        small = await brief(ask, size=100)
        large = await brief(ask, size=5000)
        whole = (await ask("tasks/result", {"taskId": small["taskId"]}))["result"]
        cut = (await ask("tasks/result", {"taskId": large["taskId"]}))["result"]
    assert whole["content"] == [{"type": "text", "text": "x" * 100}]
    text = cut["content"][0]["text"]
    assert text.startswith("[toolbridge: result truncated: showing 1,000 of ")
    assert text.endswith("to see the rest]") and len(text.encode()) < 1300
    assert cut["isError"] is False
    assert cut["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": large["taskId"]}


async def test_statuses_told_before_the_task_was_created_reach_its_agent() -> None:
    """The upstream tells ``working`` (and a finished task ``completed``) before its ``CreateTaskResult``:
    both reach the agent on its session's stream, with the agent's task id."""
    async with agent() as (_, ask), listening(ask) as heard:
        held = await brief(ask, hold=True)
        done = await brief(ask)
        expected = [
            (held["taskId"], "working", "started"),
            (done["taskId"], "working", "started"),
            (done["taskId"], "completed", "started"),  # (the SDK keeps the last message)
        ]
        with anyio.fail_after(patience(30)):
            while not all(e in heard for e in expected):  # noqa: ASYNC110  # a stream read by another task
                await anyio.sleep(0.05)
    assert [h for h in heard if h[0] == done["taskId"]] == expected[1:]


@asynccontextmanager
async def listening(ask: Ask) -> AsyncIterator[list[tuple[str, str, str | None]]]:
    """The task statuses told on the agent's session stream (its ``GET``), as (task id, status, message)."""
    heard: list[tuple[str, str, str | None]] = []
    opened = anyio.Event()

    async def listen() -> None:
        async with ask.stream() as lines:  # type: ignore[attr-defined]
            opened.set()
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                said = json.loads(line[5:])
                if said.get("method") == "notifications/tasks/status":
                    p = said["params"]
                    heard.append((p["taskId"], p["status"], p.get("statusMessage")))

    async with anyio.create_task_group() as tg:
        tg.start_soon(listen)
        with anyio.fail_after(patience(30)):
            await opened.wait()
        yield heard
        tg.cancel_scope.cancel()


async def test_a_replayed_keyed_call_answers_with_the_task_it_made() -> None:
    """A ``tools/call`` with an idempotency key that made a task, sent again: the same task (the hub
    replays the call: no second task upstream); once toolbridge has forgotten it, a clear error."""
    keyed = {"name": "ts.brief", "arguments": {"hold": True}, "task": {"ttl": 60000}}
    keyed["_meta"] = {"toolbridge/idempotency-key": "k-1"}
    async with agent() as (hub, ask):
        first = (await ask("tools/call", keyed))["result"]["task"]
        again = (await ask("tools/call", keyed))["result"]["task"]
        listed = (await ask("tasks/list", {}))["result"]["tasks"]
        got = (await ask("tasks/get", {"taskId": again["taskId"]}))["result"]
        await hub.audit.flush()
        outcomes = [r.entry.outcome for r in await hub.audit.tail(50) if r.entry.tool == "ts.brief"]
    assert first["taskId"].startswith("ts/")
    assert again["taskId"] == first["taskId"] == got["taskId"]
    assert [t["taskId"] for t in listed] == [first["taskId"]]
    assert sorted(outcomes) == ["ok", "replayed"]


async def test_finished_and_expired_tasks_are_forgotten_first_and_said_to_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tasks, "MAX_TASKS", 2)
    keyed = {"name": "ts.brief", "arguments": {"hold": True}, "task": {}, "_meta": {"idempotencyKey": "k-2"}}
    async with agent() as (_, ask):
        running = (await ask("tools/call", keyed))["result"]["task"]
        finished = await brief(ask)  # completed at once
        await until_finished(ask, finished)
        await brief(ask, hold=True)  # one too many: the finished task goes
        kept = await ask("tasks/get", {"taskId": running["taskId"]})
        forgotten = await ask("tasks/get", {"taskId": finished["taskId"]})
        fourth = await brief(ask, hold=True)  # none finished: the oldest goes
        oldest = await ask("tasks/result", {"taskId": running["taskId"]})
        replayed = await ask("tools/call", keyed)
        expiring = await brief(ask, hold=True, ttl=300, delay=250)  # (the third goes; its ttl ran 250 ms)
        with anyio.fail_after(patience(30)):
            while "result" in (expired := await ask("tasks/get", {"taskId": expiring["taskId"]})):  # noqa: ASYNC110
                await anyio.sleep(0.1)  # (polls as an agent does)
        fourth_now = await ask("tasks/get", {"taskId": fourth["taskId"]})
    assert kept["result"]["status"] == "working"
    assert forgotten["error"]["code"] == oldest["error"]["code"] == -32602
    for answer, task in ((forgotten, finished), (oldest, running)):
        assert answer["error"]["message"].startswith(f"task {task['taskId']!r} was forgotten: toolbridge")
    assert "no longer knows" in replayed["error"]["message"]  # never a second task
    assert expired["error"]["code"] == -32602
    said = f"task {expiring['taskId']!r} has expired: its ttl of 0.3 s"
    assert expired["error"]["message"].startswith(said)
    assert fourth_now["result"]["status"] == "working"


async def test_a_task_whose_ttl_ran_out_before_its_answer_came_is_answered_and_said_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upstream answers with a task whose ttl ran out meanwhile (a slow upstream, a busy machine):
    the agent gets its task, and asking about it says that it expired (the table, full, looked for
    expired tasks and forgot the new one before its answer was made: the call failed with a KeyError)."""
    monkeypatch.setattr(_tasks, "MAX_TASKS", 1)
    async with agent() as (_, ask):
        await brief(ask, hold=True)
        late = await brief(ask, hold=True, ttl=300, delay=400)
        got = await ask("tasks/get", {"taskId": late["taskId"]})
    assert late["taskId"].startswith("ts/") and late["ttl"] == 300
    assert got["error"]["message"].startswith(f"task {late['taskId']!r} has expired: its ttl of 0.3 s")


async def test_a_task_that_expires_while_toolbridge_asks_its_upstream_is_said_to_have_expired() -> None:
    """A ``tasks/get`` that toolbridge forwards while the task's ttl still runs, and that reaches the
    upstream's store after it ran out (the upstream deleted the task): toolbridge says that the task
    expired, not the upstream's bare "Task not found"."""
    async with agent() as (_, ask):
        task = await brief(ask, hold=True, ttl=1000, lag=1500)
        got = await ask("tasks/get", {"taskId": task["taskId"]})
    assert got["error"]["message"].startswith(f"task {task['taskId']!r} has expired: its ttl of 1 s")


async def until_finished(ask: Ask, task: dict[str, Any]) -> None:
    """Until toolbridge knows ``task`` finished: its status notification may be handled after the
    ``CreateTaskResult`` that follows it (another task of the upstream session), and a ``tasks/get``
    answer tells toolbridge too."""
    with anyio.fail_after(patience(30)):
        while (await ask("tasks/get", {"taskId": task["taskId"]}))["result"]["status"] != "completed":  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def test_what_a_task_asks_while_it_runs_reaches_its_agent() -> None:
    """A task that needs input (status ``input_required``) asks its client with an elicitation for the
    task, delivered on the client's ``tasks/result``: through toolbridge, the agent (the official
    TypeScript client, waiting on ``tasks/result`` as its SDK does) is asked, with its own task id, and
    its answer reaches the upstream, whose result says so; as when it runs the task directly."""
    require(NODE, MODULES / "@modelcontextprotocol" / "sdk", MODULES / "zod")
    hub = Hub()
    hub.add_connector(McpConnector("ts", StdioServer(str(NODE), (str(SERVER), str(MODULES)))))
    async with served_over_http(hub) as (url, key):
        with anyio.fail_after(patience(120)):
            done = await anyio.run_process([str(NODE), str(ASK_AGENT), url, key, str(MODULES), "ts.brief"])
    seen = json.loads(done.stdout)
    created = seen["messages"][0]
    assert created["type"] == "taskCreated" and created["taskId"].startswith("ts/")
    assert seen["messages"][-1]["type"] == "result"
    assert seen["messages"][-1]["result"]["content"] == [{"type": "text", "text": "picked blue"}]
    assert "input_required" in {m.get("status") for m in seen["messages"]}
    [asked] = seen["asked"]
    assert asked["message"] == "Which colour?"
    assert asked["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": created["taskId"]}
