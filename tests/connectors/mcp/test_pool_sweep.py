"""The idle sweep never closes a session that a call took while the sweep was closing another one.

The sweep picks the sessions idle long enough, then closes them one by one; closing one is a request to
the upstream (``DELETE``), which may take a while. A call that takes one of the picked sessions meanwhile
must not have it closed under it. The upstream here holds the ``DELETE`` of the first session, and the
call's tool, until the test lets them go.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp.server.mcpserver import MCPServer

from tests._patience import patience
from tests.connectors.mcp.test_connection_sessions import AGENT, BindingGate, hub_for, text
from tests.connectors.mcp.test_upstream_auth import serving
from toolbridge.connectors.mcp import SessionPool

pytestmark = pytest.mark.anyio


@dataclass
class Holds:
    """What the upstream holds until the test lets it go (it serves on its own thread)."""

    held_delete: set[str] = field(default_factory=set)
    deleting: threading.Event = field(default_factory=threading.Event)
    let_delete: threading.Event = field(default_factory=threading.Event)
    calling: threading.Event = field(default_factory=threading.Event)
    let_call: threading.Event = field(default_factory=threading.Event)

    def wrap(self, app: Any) -> Any:
        async def holding(scope: dict[str, Any], receive: Any, send: Any) -> None:
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            if scope.get("method") == "DELETE" and headers.get("mcp-session-id") in self.held_delete:
                self.deleting.set()
                await anyio.to_thread.run_sync(self.let_delete.wait, patience(20))
            await app(scope, receive, send)

        return holding


def held_upstream(gate: BindingGate, holds: Holds) -> Any:
    server = MCPServer("held")

    @server.tool(description="Add two numbers.")
    def add(a: int, b: int) -> str:
        return str(a + b)

    @server.tool(description="Answer once let go.")
    async def wait() -> str:
        holds.calling.set()
        await anyio.to_thread.run_sync(holds.let_call.wait, patience(20))
        return "done"

    return holds.wrap(gate.wrap(server.streamable_http_app(json_response=True)))


async def until(event: threading.Event) -> None:
    assert await anyio.to_thread.run_sync(event.wait, patience(10)), "the upstream was never reached"


async def test_a_session_taken_while_the_sweep_closes_another_is_not_closed_under_its_call(
    sqlite_url: str,
) -> None:
    gate, holds = BindingGate(), Holds()
    with serving(held_upstream(gate, holds)) as url:
        async with hub_for(sqlite_url, url, pool=SessionPool(size=4, idle=60)) as (hub, connector):
            await hub.call(AGENT, "up.add", {"a": 1, "b": 1}, connection="bob")
            await hub.call(AGENT, "up.add", {"a": 1, "b": 1}, connection="carol")  # both idle now
            holds.held_delete.update(gate.sessions_of("bob"))
            answers: list[str] = []

            async def call_as_carol() -> None:
                answers.append(text(await hub.call(AGENT, "up.wait", {}, connection="carol")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(connector.pool.sweep, anyio.current_time() + 60)
                await until(holds.deleting)  # the sweep is closing bob's session
                tg.start_soon(call_as_carol)
                await until(holds.calling)  # carol's call runs on a session of carol's
                holds.let_delete.set()
                with anyio.fail_after(patience(10)):
                    while len(gate.deleted) < 2:  # noqa: ASYNC110 - bounded poll: the sweep goes on
                        await anyio.sleep(0.02)
                holds.let_call.set()
            assert answers == ["done"]
            assert gate.refused == []
