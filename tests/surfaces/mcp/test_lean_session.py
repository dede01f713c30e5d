"""The lean path of handshake-era sessions answers exactly as the SDK's session machinery does."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from tests._patience import patience
from toolbridge import Hub

from .conftest import LEGACY, Served, make_hub, serve
from .test_lean import normalized

pytestmark = pytest.mark.anyio

CASES: list[tuple[str, dict[str, Any] | bytes]] = [
    ("alice", {"name": "demo.add", "arguments": {"a": 1, "b": 2}}),
    ("alice", {"name": "demo.echo", "arguments": {"text": "héllo"}}),
    ("alice", {"name": "demo.add", "arguments": {"a": "x"}}),
    ("alice", {"name": "demo.ecko", "arguments": {}}),
    ("reader", {"name": "demo.add", "arguments": {"a": 1, "b": 2}}),
    ("alice", {"name": "demo.big", "arguments": {"size": 9_000}}),
    ("alice", {"name": "demo.fail", "arguments": {"reason": "boom"}}),
    ("alice", {"name": "admin.wipe"}),
    ("alice", {"name": "demo.echo", "arguments": {"text": "x"}, "_meta": {"idempotencyKey": "k-1"}}),
    ("alice", {"name": "demo.echo", "arguments": {"text": "x"}, "_meta": {"progressToken": 3}}),
    ("alice", {"name": "demo.echo", "arguments": ["x"]}),
    ("alice", {"name": 5, "arguments": {}}),
    ("alice", {"name": "demo.echo", "arguments": {"text": "x"}, "extra": 1}),
    ("alice", b'{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"demo.echo"}}'),
    (
        "alice",
        b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"demo.add","arguments":{"a":1e400}}}',
    ),
    (
        "alice",
        '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"demo.echo"}}'.encode("utf-16"),
    ),
]


def sdk_methods(served: Served) -> list[str]:
    """The requests the SDK's server runner handles from now on (its middleware sees every one)."""
    seen: list[str] = []

    async def record(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is not None:  # not a notification
            seen.append(ctx.method)
        return await call_next(ctx)

    served.surface._manager.app.middleware.append(record)
    return seen


async def session_answer(served: Served, agent: str, call: dict[str, Any] | bytes) -> tuple[Any, ...]:
    session = await served.initialize(agent)
    await served.legacy(session, "ping", agent=agent)  # the SDK records the client: later calls may be lean
    if isinstance(call, bytes):
        response = await served.post(call, agent=agent, mcp_session_id=session, mcp_protocol_version=LEGACY)
    else:
        response = await served.legacy(session, "tools/call", call, agent=agent)
    headers = (response.headers.get("content-type"), response.headers.get("mcp-session-id") == session)
    return response.status_code, headers, normalized(response.json())


@pytest.mark.parametrize(("agent", "call"), CASES)
async def test_lean_and_sdk_session_paths_agree(agent: str, call: dict[str, Any] | bytes) -> None:
    async with serve(make_hub(), lean=True) as lean, serve(make_hub(), lean=False) as sdk:
        assert await session_answer(lean, agent, call) == await session_answer(sdk, agent, call)


async def test_a_plain_session_call_takes_the_lean_path(served: Served) -> None:
    session = await served.initialize()
    seen = sdk_methods(served)
    add = {"name": "demo.add", "arguments": {"a": 1, "b": 2}}
    await served.legacy(session, "tools/call", add)  # the first request: the SDK (it records the client)
    answer = await served.legacy(session, "tools/call", add)
    assert answer.json()["result"]["structuredContent"] == {"sum": 3}
    assert seen == ["tools/call"]
    await served.legacy(session, "tools/list")  # everything else: the SDK
    await served.legacy(session, "tools/call", {**add, "_meta": {"progressToken": 1}})
    assert seen == ["tools/call", "tools/list", "tools/call"]


async def test_another_agent_cannot_use_the_session(served: Served) -> None:
    session = await served.initialize("alice")
    echo = {"name": "demo.echo", "arguments": {"text": "x"}}
    answer = await served.legacy(session, "tools/call", echo, agent="reader")
    assert answer.status_code == 404


def slow_hub() -> tuple[Hub, dict[str, Any]]:
    hub = make_hub()
    state: dict[str, Any] = {"started": anyio.Event(), "cancelled": anyio.Event()}

    @hub.tool(connector="demo", read_only=True)
    async def wait() -> str:
        """Waits until cancelled."""
        state["started"].set()
        try:
            await anyio.sleep_forever()
        finally:
            state["cancelled"].set()
        return "never"

    return hub, state


@asynccontextmanager
async def slow_call(
    lean: bool,
) -> AsyncIterator[tuple[Served, str, dict[str, Any], list[httpx2.Response]]]:
    """A session whose ``demo.wait`` call is in flight; the call's answer lands in the list."""
    hub, state = slow_hub()
    answers: list[httpx2.Response] = []
    async with serve(hub, lean=lean) as served, anyio.create_task_group() as tg:
        session = await served.initialize()
        await served.legacy(session, "ping")  # the SDK records the client: later calls may be lean

        async def call() -> None:
            answers.append(await served.legacy(session, "tools/call", {"name": "demo.wait", "arguments": {}}))

        tg.start_soon(call)
        with anyio.fail_after(patience(10)):
            await state["started"].wait()
        yield served, session, state, answers


@pytest.mark.parametrize("lean", [True, False])
async def test_a_cancelled_session_call_is_cancelled_and_answered_so(lean: bool) -> None:
    async with slow_call(lean) as (served, session, state, answers):
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
        told = await served.post(note, mcp_session_id=session, mcp_protocol_version=LEGACY)
        assert told.status_code == 202
        with anyio.fail_after(patience(10)):
            await state["cancelled"].wait()
    assert answers[0].status_code == 200
    cancelled = {"code": -32800, "message": "Request cancelled"}
    assert answers[0].json() == {"jsonrpc": "2.0", "id": 9, "error": cancelled}


@pytest.mark.parametrize("lean", [True, False])
async def test_a_session_ended_under_a_call_cancels_it(lean: bool) -> None:
    async with slow_call(lean) as (served, session, state, answers):
        ended = await served.http.delete("/mcp", headers=served.headers(mcp_session_id=session))
        assert ended.status_code == 200
        with anyio.fail_after(patience(10)):
            await state["cancelled"].wait()
            while not answers:  # noqa: ASYNC110 - the answer is written after the cancellation
                await anyio.sleep(0.01)
    assert answers[0].status_code == 500
    error = {"code": -32603, "message": "Session terminated before the request completed"}
    assert answers[0].json() == {"jsonrpc": "2.0", "id": None, "error": error}


async def test_a_lean_call_holds_the_session_open() -> None:
    """The idle timeout counts from the end of the last request, lean ones included."""
    async with slow_call(lean=True) as (served, session, _, answers):
        transport = served.surface._manager._server_instances[session]
        assert transport.idle_scope is not None
        assert transport.idle_scope.deadline == math.inf  # a request in flight: no idle countdown
        note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
        await served.post(note, mcp_session_id=session, mcp_protocol_version=LEGACY)
        with anyio.fail_after(patience(10)):
            while not answers:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        before = transport.idle_scope.deadline
        assert before < math.inf
        await served.legacy(session, "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}})
        assert before < transport.idle_scope.deadline < math.inf  # counted again from this call's end
