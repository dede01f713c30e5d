"""Tool search mode: an agent with ``tool_mode: search`` sees three meta-tools, still bound by its scopes."""

from __future__ import annotations

import json

import pytest

from tests.catalog.test_compact import BIG
from toolbridge import Tool

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
    missing = result_of(
        await searching.modern(
            "tools/call",
            {"name": "toolbridge.call_tool", "arguments": {"name": "admin.wipf", "arguments": {}}},
            agent="seeker",
        )
    )
    assert refused["_meta"]["toolbridge/problem"]["status"] == 404  # as if admin.wipe did not exist
    assert refused["content"][0]["text"] == missing["content"][0]["text"].replace("wipf", "wipe")


async def call_meta(served: Served, era: str, name: str, arguments: dict[str, object]) -> dict[str, object]:
    """A meta-tool call by the search-mode agent, in either protocol era."""
    params = {"name": name, "arguments": arguments}
    if era == "modern":
        return result_of(await served.modern("tools/call", params, agent="seeker"))
    session = await served.initialize(agent="seeker")
    return result_of(await served.legacy(session, "tools/call", params, agent="seeker"))


def text_of(result: dict[str, object]) -> str:
    return "\n".join(c["text"] for c in result["content"])  # type: ignore[attr-defined]


async def refusal(served: Served, era: str, name: str, arguments: dict[str, object]) -> str:
    """The error text of a meta-tool call answered as a tool error (``isError``), not a protocol error."""
    refused = await call_meta(served, era, name, arguments)
    assert refused["isError"] is True, refused
    return text_of(refused)


ERAS = pytest.mark.parametrize("era", ["modern", "legacy"])


@ERAS
async def test_search_tools_refuses_unknown_keys(searching: Served, era: str) -> None:
    text = await refusal(searching, era, "toolbridge.search_tools", {"q": "add numbers"})
    assert "unknown field 'q' (did you mean 'query'?)" in text
    assert "search_tools takes: query, limit, connector, read_only" in text


@ERAS
async def test_an_empty_search_says_how_to_search(searching: Served, era: str) -> None:
    found = await call_meta(searching, era, "toolbridge.search_tools", {"query": "  "})
    answer = found["structuredContent"]
    assert answer["tools"] == [] and answer["good_match"] is False  # type: ignore[index]
    assert "describe the task" in answer["hint"]  # type: ignore[index]
    covers = {c["name"]: c["covers"] for c in answer["connectors"]}  # type: ignore[index]
    assert set(covers) == {"demo"}  # only what the agent can see: not 'admin'


@ERAS
async def test_a_search_without_a_good_match_says_so(searching: Served, era: str) -> None:
    found = await call_meta(searching, era, "toolbridge.search_tools", {"query": "book a flight to Paris"})
    answer = found["structuredContent"]
    assert answer["good_match"] is False  # type: ignore[index]
    assert "no tool matches 'book a flight to Paris' well" in answer["hint"]  # type: ignore[index]
    good = await call_meta(searching, era, "toolbridge.search_tools", {"query": "sum two numbers"})
    assert "good_match" not in good["structuredContent"]  # type: ignore[operator]
    assert good["structuredContent"]["tools"][0]["name"] == "demo.add"  # type: ignore[index]


async def test_search_filters_by_connector_and_read_only(searching: Served) -> None:
    found = await call_meta(
        searching, "modern", "toolbridge.search_tools", {"query": "text", "read_only": False}
    )
    assert "demo.echo" not in [t["name"] for t in found["structuredContent"]["tools"]]  # type: ignore[index]
    found = await call_meta(
        searching, "modern", "toolbridge.search_tools", {"query": "say the text back", "connector": "demo"}
    )
    assert found["structuredContent"]["tools"][0]["name"] == "demo.echo"  # type: ignore[index]
    assert {t["name"].split(".")[0] for t in found["structuredContent"]["tools"]} == {"demo"}  # type: ignore[index]


@pytest.fixture
async def jotting() -> object:
    """The quickstart's notes: tools named by verbs only (add, list, delete), and one the agent cannot use."""
    hub = make_hub()

    def save(text: str) -> str:
        return "n1"

    def browse(tag: str | None = None) -> list[str]:
        return []

    def remove(note_id: str) -> str:
        return "deleted"

    notes = hub.tool(connector="notes", name="add", description="Save a note.")(save)
    hub.tool(connector="notes", name="list", description="List saved notes, newest first.")(browse)
    hub.tool(connector="notes", name="delete", description="Delete a note for good.")(remove)
    hub.tool(connector="notes", name="purge", description="Erase the vault.")(notes)
    hub.tool_modes["seeker"] = "search"
    async with serve(hub) as served:
        scopes = ["demo.*", "notes.add", "notes.list"]
        served.keys["seeker"] = await hub.agents.create("seeker", scopes=scopes)
        yield served


@ERAS
async def test_following_the_hint_to_a_connector_lists_its_tools(jotting: Served, era: str) -> None:
    """The hint says to pick a connector and pass it; doing so answered ``tools: []`` with the same hint,
    and the notes connector, whose tools are named by verbs only, was described by ``"covers": ""`` and
    an empty description (found by an outside probe on the quickstart)."""
    query = {"query": "jot something down"}
    found = (await call_meta(jotting, era, "toolbridge.search_tools", query))["structuredContent"]
    assert found["good_match"] is False and "pass it as 'connector'" in found["hint"]  # type: ignore[index]
    notes = {c["name"]: c for c in found["connectors"]}["notes"]  # type: ignore[index]
    assert notes["covers"] == "add, list"  # the hidden 'purge' and 'delete' are not told
    assert notes["description"] == "add: Save a note; list: List saved notes, newest first"
    within = {**query, "connector": "notes"}
    found = (await call_meta(jotting, era, "toolbridge.search_tools", within))["structuredContent"]
    assert [(t["name"], t["summary"]) for t in found["tools"]] == [  # type: ignore[index]
        ("notes.add", "Save a note."),
        ("notes.list", "List saved notes, newest first."),
    ]
    assert found["good_match"] is False and "pick a connector below" not in found["hint"]  # type: ignore[index]
    assert "no tool of 'notes' matches 'jot something down' well; its tools are listed" in found["hint"]  # type: ignore[index]
    one = await call_meta(jotting, era, "toolbridge.search_tools", {**within, "limit": 1})
    assert len(one["structuredContent"]["tools"]) == 1  # type: ignore[index]
    assert "(1 of 2: raise 'limit' for more)" in one["structuredContent"]["hint"]  # type: ignore[index]
    good = {"query": "save a note", "connector": "notes"}
    found = (await call_meta(jotting, era, "toolbridge.search_tools", good))["structuredContent"]
    assert "good_match" not in found and found["tools"][0]["name"] == "notes.add"  # type: ignore[index,operator]


@ERAS
async def test_a_search_in_a_connector_the_agent_cannot_use_names_those_it_can(
    searching: Served, era: str
) -> None:
    """An unknown connector gave an empty list and "pick a connector below" above no connector."""
    text = await refusal(searching, era, "toolbridge.search_tools", {"query": "add", "connector": "dem"})
    assert "no connector 'dem' among the tools you can use" in text and "did you mean 'demo'?" in text
    hidden = await refusal(searching, era, "toolbridge.search_tools", {"query": "add", "connector": "admin"})
    assert "no connector 'admin'" in hidden and "connectors you can use: demo" in hidden  # admin unseen


@ERAS
async def test_a_search_by_a_tag_no_tool_has_says_so(searching: Served, era: str) -> None:
    text = await refusal(searching, era, "toolbridge.search_tools", {"query": "add", "tags": ["Math"]})
    assert "no tool you can use is tagged 'Math'" in text and "no tool you can use has tags" in text


@ERAS
async def test_a_query_over_a_thousand_characters_is_refused(searching: Served, era: str) -> None:
    """Checked by the meta-tool's schema (maxLength): the error named the value, cut before its reason."""
    text = await refusal(searching, era, "toolbridge.search_tools", {"query": "add two numbers " * 70})
    assert "query: 'add two numbers add two numbers add two numbers add two num… is too long" in text
    assert "send at most 1,000 characters (this has 1,120)" in text


@ERAS
async def test_call_tool_with_arguments_at_the_top_level(searching: Served, era: str) -> None:
    text = await refusal(searching, era, "toolbridge.call_tool", {"name": "demo.add", "a": 2, "b": 3})
    assert "call_tool got 'a', 'b' at the top level: the tool's own arguments go under 'arguments'" in text
    assert '{"name": "<tool name>", "arguments": {"<argument>": <value>, ...}}' in text


@ERAS
async def test_call_tool_with_tool_instead_of_name(searching: Served, era: str) -> None:
    arguments = {"tool": "demo.add", "arguments": {"a": 1, "b": 2}}
    text = await refusal(searching, era, "toolbridge.call_tool", arguments)  # not about params.name
    assert "unknown field 'tool' (did you mean 'name'?)" in text


@ERAS
async def test_an_unknown_tool_in_call_and_describe_is_the_meta_tools_error(
    searching: Served, era: str
) -> None:
    for meta in ("toolbridge.call_tool", "toolbridge.describe_tool"):
        text = await refusal(searching, era, meta, {"name": "demo.add_numbers"})
        assert "no tool named 'demo.add_numbers'" in text
        assert "did you mean 'demo.add'" in text  # found by search: too far apart for difflib


async def test_a_tool_called_directly_by_a_wrong_name_points_a_search_mode_agent_at_search(
    searching: Served,
) -> None:
    """Its tools/list shows the three meta-tools only: "list the available tools with tools/list" led
    nowhere (found by an outside probe)."""
    response = await searching.modern("tools/call", {"name": "demo.zzzqqq", "arguments": {}}, agent="seeker")
    error = response.json()["error"]
    assert error["code"] == -32602 and "find tools with toolbridge.search_tools" in error["message"], error


@pytest.mark.parametrize("name", ["search_tools", "mcp__toolbridge__search_tools", "tb.search_tools"])
async def test_a_meta_tool_named_without_its_prefix_is_suggested_with_it(
    searching: Served, name: str
) -> None:
    """The search index guessed a catalog tool for 'search_tools' ('notes.add' in an outside probe)."""
    response = await searching.modern("tools/call", {"name": name, "arguments": {}}, agent="seeker")
    error = response.json()["error"]
    assert error["code"] == -32602 and "did you mean 'toolbridge.search_tools'?" in error["message"], error


async def test_describe_tool_is_compact_for_big_schemas(searching: Served) -> None:
    long = "Create a model response. " + "Background. " * 4000  # 48 KB, as some upstream tools have
    searching.hub.catalog.add(Tool("demo.respond", "demo", long, BIG))
    described = await call_meta(searching, "modern", "toolbridge.describe_tool", {"name": "demo.respond"})
    compact = described["structuredContent"]
    assert "the property='…' its stub names" in compact["compact"]  # type: ignore[index]
    assert len(json.dumps(compact)) < len(json.dumps(BIG)) / 4
    assert (
        compact["description"].startswith("Create a model response.") and len(compact["description"]) == 2000
    )  # type: ignore[index]
    part = await call_meta(
        searching, "modern", "toolbridge.describe_tool", {"name": "demo.respond", "property": "huge.setting1"}
    )
    assert part["structuredContent"]["schema"] == BIG["properties"]["huge"]["properties"]["setting1"]  # type: ignore[index]
    whole = await call_meta(
        searching, "modern", "toolbridge.describe_tool", {"name": "demo.respond", "full": True}
    )
    assert whole["structuredContent"]["inputSchema"] == BIG  # type: ignore[index]
    assert whole["structuredContent"]["description"] == long  # type: ignore[index]
    text = await refusal(
        searching, "modern", "toolbridge.describe_tool", {"name": "demo.respond", "property": "nope"}
    )
    assert "'demo.respond' has no argument 'nope'" in text and "model, input, instructions" in text
