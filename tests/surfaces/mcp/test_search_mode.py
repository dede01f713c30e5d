"""Tool search mode: an agent with ``tool_mode: search`` sees three meta-tools, still bound by its scopes."""

from __future__ import annotations

import json

import pytest

from .conftest import Served, make_hub, serve

pytestmark = pytest.mark.anyio


def result_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert "result" in body, body
    return body["result"]  # type: ignore[no-any-return]


@pytest.fixture
async def searching() -> object:
    hub = make_hub()
    hub.tool_modes["seeker"] = "search"
    async with serve(hub) as served:
        served.keys["seeker"] = await hub.agents.create("seeker", scopes=["demo.*"])
        yield served


async def test_search_mode_lists_three_meta_tools(searching: Served) -> None:
    listed = result_of(await searching.modern("tools/list", agent="seeker"))
    assert [t["name"] for t in listed["tools"]] == [  # type: ignore[index]
        "toolbridge.search_tools",
        "toolbridge.describe_tool",
        "toolbridge.call_tool",
    ]
    full = result_of(await searching.modern("tools/list", agent="alice"))
    assert len(full["tools"]) > 3  # type: ignore[arg-type]


async def test_search_describe_and_call(searching: Served) -> None:
    found = result_of(
        await searching.modern(
            "tools/call",
            {"name": "toolbridge.search_tools", "arguments": {"query": "add numbers"}},
            agent="seeker",
        )
    )
    names = [t["name"] for t in found["structuredContent"]["tools"]]  # type: ignore[index]
    assert names[0] == "demo.add"
    assert "admin.wipe" not in names  # outside the agent's scopes: never found

    described = result_of(
        await searching.modern(
            "tools/call",
            {"name": "toolbridge.describe_tool", "arguments": {"name": "demo.add"}},
            agent="seeker",
        )
    )
    schema = described["structuredContent"]["inputSchema"]  # type: ignore[index]
    assert set(schema["properties"]) == {"a", "b"}

    called = result_of(
        await searching.modern(
            "tools/call",
            {
                "name": "toolbridge.call_tool",
                "arguments": {"name": "demo.add", "arguments": {"a": 2, "b": 3}},
            },
            agent="seeker",
        )
    )
    assert called["structuredContent"] == {"sum": 5}
    await searching.hub.audit.flush()
    audit = await searching.hub.audit.tail(1)
    assert audit[0].entry.tool == "demo.add" and audit[0].entry.principal == "agent:seeker"


async def test_call_tool_keeps_the_agents_scopes(searching: Served) -> None:
    refused = result_of(
        await searching.modern(
            "tools/call",
            {"name": "toolbridge.call_tool", "arguments": {"name": "admin.wipe", "arguments": {}}},
            agent="seeker",
        )
    )
    assert refused["isError"] is True
    assert "may not call 'admin.wipe'" in json.dumps(refused)
