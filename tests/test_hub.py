"""The call path, end to end in-process: authorize, validate, invoke, shape, record."""

from __future__ import annotations

import anyio
import pytest

from toolbridge import (
    BadRequest,
    Hub,
    InvalidArguments,
    Limits,
    PayloadTooLarge,
    Principal,
    ToolExecutionError,
    ToolNotFound,
    UpstreamTimeout,
)
from toolbridge.audit import args_digest
from toolbridge.errors import problem

pytestmark = pytest.mark.anyio


def make_hub(**kwargs: object) -> Hub:
    hub = Hub(**kwargs)  # type: ignore[arg-type]

    @hub.tool(connector="math", read_only=True)
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    @hub.tool(connector="math", read_only=True)
    async def big(n: int) -> str:
        return "x" * n

    @hub.tool(connector="notes")
    async def write(text: str) -> dict[str, str]:
        """Store a note."""
        if text == "boom":
            raise RuntimeError("disk full")
        return {"stored": text}

    @hub.tool(connector="slow", read_only=True)
    async def wait(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    return hub


async def test_call_returns_value_and_text() -> None:
    async with make_hub() as hub:
        result = await hub.call(Principal.local(), "math.add", {"a": 40})
    assert (result.value, result.text, result.truncated) == (42, "42", False)
    assert result.tool == "math.add" and len(result.request_id) == 16


async def test_sync_and_async_tools_both_work() -> None:
    async with make_hub() as hub:
        result = await hub.call(Principal.local(), "notes.write", {"text": "hi"})
    assert result.value == {"stored": "hi"}
    assert result.text == '{"stored":"hi"}'


async def test_unknown_tool_suggests_close_names() -> None:
    async with make_hub() as hub:
        with pytest.raises(ToolNotFound) as info:
            await hub.call(Principal.local(), "math.ad", {})
    assert "math.add" in info.value.suggestions
    assert "did you mean 'math.add'" in str(info.value)


async def test_wrong_type_names_the_field() -> None:
    async with make_hub() as hub:
        with pytest.raises(InvalidArguments) as info:
            await hub.call(Principal.local(), "math.add", {"a": "one"})
    assert info.value.errors == [{"field": "a", "error": "'one' is not of type 'integer'"}]
    assert info.value.status == 422


async def test_unknown_field_is_rejected_with_did_you_mean() -> None:
    async with make_hub() as hub:
        with pytest.raises(InvalidArguments, match=r"unknown field 'bb' \(did you mean 'b'\?\)"):
            await hub.call(Principal.local(), "math.add", {"a": 1, "bb": 2})


async def test_missing_field_is_named() -> None:
    async with make_hub() as hub:
        with pytest.raises(InvalidArguments, match="'a' is a required property"):
            await hub.call(Principal.local(), "math.add", {})


async def test_arguments_must_be_an_object() -> None:
    async with make_hub() as hub:
        with pytest.raises(BadRequest, match="must be a JSON object"):
            await hub.call(Principal.local(), "math.add", [1, 2])  # type: ignore[arg-type]


async def test_oversize_arguments_are_refused() -> None:
    async with make_hub(limits=Limits(max_argument_bytes=100)) as hub:
        with pytest.raises(PayloadTooLarge) as info:
            await hub.call(Principal.local(), "notes.write", {"text": "x" * 200})
    assert info.value.status == 413 and info.value.limit == 100


async def test_tool_exception_becomes_typed_error() -> None:
    async with make_hub() as hub:
        with pytest.raises(ToolExecutionError, match="RuntimeError: disk full") as info:
            await hub.call(Principal.local(), "notes.write", {"text": "boom"})
    assert info.value.tool == "notes.write"


async def test_large_result_is_truncated_with_marker() -> None:
    async with make_hub(limits=Limits(max_result_bytes=1000)) as hub:
        result = await hub.call(Principal.local(), "math.big", {"n": 5000})
    assert result.truncated and result.value is None and result.size == 5000
    marker, kept, again = result.text.split("\n")
    assert "result truncated: showing 1,000 of 5,000 bytes" in marker  # said before the agent reads on
    assert kept == "x" * 1000 and again == marker


async def test_a_truncated_result_names_the_tools_paging_arguments() -> None:
    hub = Hub(limits=Limits(max_result_bytes=500))

    @hub.tool(connector="logs", read_only=True)
    def lines(limit: int = 1000, cursor: str = "", grep: str = "") -> list[str]:
        """Log lines."""
        return [f"line {i}" for i in range(limit)]

    async with hub:
        result = await hub.call(Principal.local(), "logs.lines", {})
    assert result.truncated
    assert "call again with the tool's paging arguments (limit, cursor) or narrower filters" in result.text


async def test_call_deadline() -> None:
    async with make_hub(limits=Limits(call_timeout=0.05)) as hub:
        with pytest.raises(UpstreamTimeout, match="within the call deadline of 0.05 s"):
            await hub.call(Principal.local(), "slow.wait", {"seconds": 5})


async def test_read_scope_allows_only_read_only_tools() -> None:
    async with make_hub() as hub:
        reader = Principal.agent("reader", ["math.*:read", "notes.*:read"])
        assert [t.name for t in hub.list_tools(reader)] == ["math.add", "math.big"]
        with pytest.raises(ToolNotFound, match="no tool named 'notes.write'"):
            await hub.call(reader, "notes.write", {"text": "x"})


async def test_a_tool_outside_the_scopes_answers_like_a_missing_one() -> None:
    async with make_hub() as hub:
        agent = Principal.agent("a", ["math.*"])
        with pytest.raises(ToolNotFound) as hidden:
            await hub.call(agent, "notes.write", {"text": "x"})
        with pytest.raises(ToolNotFound) as missing:
            await hub.call(agent, "notes.wrote", {"text": "x"})
        with pytest.raises(ToolNotFound) as typo:
            await hub.call(agent, "notes.writ", {"text": "x"})
    same = {"detail": "no tool named 'notes.write'", "tool": "notes.write"}
    assert problem(hidden.value) == {**problem(missing.value), **same}
    with pytest.raises(ToolNotFound) as listed:
        hub.get_tool(agent, "notes.write")  # what the catalog (tools/list, GET /v1/tools/NAME) says
    assert problem(listed.value) == problem(hidden.value) and hidden.value.status == 404
    assert typo.value.suggestions == []  # notes.write exists, but not for this agent


async def test_every_outcome_is_audited() -> None:
    async with make_hub() as hub:
        p = Principal.local()
        await hub.call(p, "math.add", {"a": 1})
        for tool, args in [("math.ad", {}), ("math.add", {"a": "x"})]:
            with pytest.raises(ToolNotFound if tool == "math.ad" else InvalidArguments):
                await hub.call(p, tool, args)
        with pytest.raises(ToolNotFound):
            await hub.call(Principal.agent("r", ["*:read"]), "notes.write", {"text": "x"})
        await hub.audit.flush()
        rows = await hub.audit.tail(10)
        assert [(r.entry.tool, r.entry.outcome, r.entry.error_code) for r in rows] == [
            ("math.add", "ok", None),
            ("math.ad", "error", "tool_not_found"),
            ("math.add", "error", "invalid_arguments"),
            ("notes.write", "error", "tool_not_found"),
        ]
        assert rows[0].entry.args_digest == args_digest({"a": 1})
        assert rows[3].entry.principal == "agent:r"
        assert (await hub.audit.verify()).ok


async def test_calling_a_stopped_hub_is_a_clear_error() -> None:
    hub = make_hub()
    with pytest.raises(RuntimeError, match="async with hub"):
        await hub.call(Principal.local(), "math.add", {"a": 1})


async def test_concurrent_calls_keep_the_chain_linear() -> None:
    async with make_hub() as hub:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(hub.call, Principal.local(), "math.add", {"a": i})
        await hub.audit.flush()
        verification = await hub.audit.verify()
    assert verification.ok and verification.checked == 200
