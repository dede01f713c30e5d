"""Which call an upstream's request belongs to, and what the caller is shown of it (Inbound, in-process)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from toolbridge.connectors._events import CALL_EVENTS, CallEvents
from toolbridge.connectors.mcp._inbound import Inbound

pytestmark = pytest.mark.anyio

ELICIT = {"jsonrpc": "2.0", "id": 5, "method": "elicitation/create", "params": {"message": "key s3cr3t-42?"}}


class Agent:
    """A caller that answers every request and remembers what it was asked."""

    def __init__(self, name: str) -> None:
        self.name, self.asked = name, list[Mapping[str, Any]]()

    async def ask(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.asked.append(params)
        return {"result": {"action": "accept", "content": {"by": self.name}}}


def inbound() -> Inbound:
    found = Inbound("up", namespace="up", emit=lambda _event: None, relist=lambda: None)
    found.learn_secrets("conn-1", ["s3cr3t-42"])
    return found


async def test_the_only_call_in_flight_is_asked_with_the_connections_secrets_masked() -> None:
    upstream, agent = inbound(), Agent("a")
    with upstream.in_flight("r1", CallEvents(ask=agent.ask), None):
        answer = await upstream.on_message(ELICIT)
    assert answer == {"result": {"action": "accept", "content": {"by": "a"}}}
    assert agent.asked == [{"message": "key [redacted]?"}]


async def test_with_several_calls_in_flight_the_calls_own_task_decides() -> None:
    upstream, a, b = inbound(), Agent("a"), Agent("b")
    events_b = CallEvents(ask=b.ask)
    with upstream.in_flight("r1", CallEvents(ask=a.ask), None), upstream.in_flight("r2", events_b, None):
        refused = await upstream.on_message(ELICIT)
        token = CALL_EVENTS.set(events_b)  # read on b's own answer stream
        try:
            answered = await upstream.on_message(ELICIT)
        finally:
            CALL_EVENTS.reset(token)
    assert refused is not None and refused["error"]["code"] == -32601
    assert "2 calls in flight" in refused["error"]["message"]
    assert answered == {"result": {"action": "accept", "content": {"by": "b"}}}
    assert (len(a.asked), len(b.asked)) == (0, 1)


async def test_no_call_in_flight_and_a_caller_that_cannot_be_asked_are_refused_with_the_reason() -> None:
    upstream = inbound()
    nobody = await upstream.on_message(ELICIT)
    with upstream.in_flight("r1", None, None):  # a REST or Python caller
        rest = await upstream.on_message(ELICIT)
    assert nobody is not None and "no call of toolbridge's is waiting for it" in nobody["error"]["message"]
    assert rest is not None and "only an MCP agent of the 2025-11-25 era" in rest["error"]["message"]


async def test_a_tasks_request_is_never_put_to_the_only_call_in_flight() -> None:
    """A request that belongs to a task (``_meta`` names it) comes on ``tasks/result``, not on a call:
    the agent of whichever call is in flight must not be asked it."""
    upstream, agent = inbound(), Agent("a")
    related = {"io.modelcontextprotocol/related-task": {"taskId": "t1"}}
    of_a_task = {**ELICIT, "params": {**ELICIT["params"], "_meta": related}}
    with upstream.in_flight("r1", CallEvents(ask=agent.ask), None):
        refused = await upstream.on_message(of_a_task)
    assert refused is not None and refused["error"]["code"] == -32601
    assert "task" in refused["error"]["message"]
    assert agent.asked == []
