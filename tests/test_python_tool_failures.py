"""A Python function tool that hangs, exits, or returns what JSON cannot hold still gets a clear error, one
audit row and a closed idempotency claim (an outside probe found each escaping the call path: a bare 500,
no audit row, the key answering 409 "still in progress" until a restart; a hung sync tool answering after
its deadline and holding a pool thread)."""

from __future__ import annotations

import json
import sys
import threading

import pydantic
import pytest

from toolbridge import Hub, Principal
from toolbridge.connectors import Invocation
from toolbridge.errors import InvalidArguments, OutcomeUnknown, ToolExecutionError, UpstreamTimeout
from toolbridge.hub import Limits

pytestmark = pytest.mark.anyio

ME = Principal.local()


class Item(pydantic.BaseModel):
    name: str
    qty: int = 1


async def test_a_sync_tool_past_the_deadline_is_answered_at_the_deadline() -> None:
    released = threading.Event()
    hub = Hub(limits=Limits(call_timeout=0.2))

    @hub.tool(connector="py")
    def stuck() -> str:
        released.wait(600)  # until the test lets it go
        return "late"

    @hub.tool(connector="py", read_only=True)
    def stuck_read() -> str:
        released.wait(600)
        return "late"

    @hub.tool(connector="py")
    def stuck_keyed(invocation: Invocation) -> str:  # passes its key on: safe to repeat with that key
        released.wait(600)
        return "late"

    async with hub:
        with pytest.raises(UpstreamTimeout):
            await hub.call(ME, "py.stuck_read", {})
        with pytest.raises(UpstreamTimeout) as keyed:
            await hub.call(ME, "py.stuck_keyed", {}, idempotency_key="k-stuck")
        assert "try again later with the same idempotency key" in str(keyed.value.hint)
        # a write past its deadline may yet take effect: "try again later" could apply it twice
        with pytest.raises(OutcomeUnknown, match="may or may not have taken effect") as info:
            await hub.call(ME, "py.stuck", {})
        assert "check whether it took effect before calling again" in str(info.value.hint)
        assert not released.is_set()  # answered while the functions still ran: they were not waited for
        released.set()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("undecodable", "cannot be sent as JSON"),
        ("an_object", "cannot be sent as JSON"),
        ("exits", "SystemExit"),
    ],
)
async def test_a_tool_whose_result_or_exit_escaped_is_a_tool_error_audited_and_closed(
    name: str, says: str
) -> None:
    hub = Hub()

    @hub.tool(connector="py")
    def undecodable() -> str:
        return b"\xff\xfe"  # type: ignore[return-value]

    @hub.tool(connector="py")
    def an_object() -> dict[str, object]:
        return {"x": object()}

    @hub.tool(connector="py")
    def exits() -> None:
        sys.exit(3)

    async with hub:
        with pytest.raises(ToolExecutionError, match=says):
            await hub.call(ME, f"py.{name}", {}, idempotency_key=f"k-{name}")
        with pytest.raises(ToolExecutionError, match=says):  # the stored failure, not 409 "in progress"
            await hub.call(ME, f"py.{name}", {}, idempotency_key=f"k-{name}")
        await hub.audit.flush()
        rows = [r.entry for r in await hub.audit.tail(10) if r.entry.tool == f"py.{name}"]
    assert [r.outcome for r in rows] == ["error", "replayed"]  # the second: the stored failure, said so


async def test_nan_and_infinities_come_back_as_null() -> None:
    hub = Hub()

    @hub.tool(connector="py")
    def measure() -> dict[str, float]:
        return {"ok": 1.5, "nan": float("nan"), "inf": float("inf")}

    async with hub:
        result = await hub.call(ME, "py.measure", {})
    assert result.value == {"ok": 1.5, "nan": None, "inf": None}
    assert result.text == '{"ok":1.5,"nan":null,"inf":null}'


async def test_unknown_fields_inside_nested_models_are_refused_by_name() -> None:
    """The top level refused unknown fields; inside a nested pydantic model they were dropped silently."""
    hub = Hub()

    @hub.tool(connector="py")
    def order(items: list[Item]) -> int:
        return sum(i.qty for i in items)

    async with hub:
        assert (await hub.call(ME, "py.order", {"items": [{"name": "a", "qty": 2}]})).value == 2
        with pytest.raises(InvalidArguments) as refused:
            await hub.call(ME, "py.order", {"items": [{"name": "a", "bogus": 1}]})
    assert "'bogus'" in refused.value.message and "items.0" in refused.value.message


async def test_a_result_that_is_not_what_the_tool_declares_is_a_tool_error() -> None:
    """'-> dict[str, int]' returning [1, 2] was served as a list under an advertised object outputSchema."""
    hub = Hub()

    @hub.tool(connector="py")
    def counts() -> dict[str, int]:
        return [1, 2]  # type: ignore[return-value]

    @hub.tool(connector="py")
    def fine() -> dict[str, int]:
        return {"a": 1}

    async with hub:
        assert (await hub.call(ME, "py.fine", {})).value == {"a": 1}
        with pytest.raises(ToolExecutionError, match="returned list, not what its annotation declares"):
            await hub.call(ME, "py.counts", {})


def _checked(qty: int) -> int:
    if qty < 1:
        raise ValueError("deep inside")
    return qty


async def test_a_value_error_the_function_raises_itself_is_the_callers_422() -> None:
    """A function that raises ValueError in its own body is refusing its arguments: the caller gets 422
    invalid_arguments carrying the text (it was a 502 'upstream' failure the caller could not act on).
    A ValueError from code it calls, a subclass (JSONDecodeError) or a TypeError stays tool_failed (502)."""
    hub = Hub()

    @hub.tool(connector="py", read_only=True)
    def order(qty: int) -> int:
        if qty > 10:
            raise ValueError(f"qty must be at most 10, not {qty}")
        return qty

    @hub.tool(connector="py", read_only=True)
    async def parse(text: str) -> int:
        return int(text)  # a conversion of the argument in the function's own body

    @hub.tool(connector="py", read_only=True)
    def helper(qty: int) -> int:
        return _checked(qty)

    @hub.tool(connector="py", read_only=True)
    def decode(text: str) -> object:
        raise json.JSONDecodeError("no JSON", text, 0)  # a subclass, even in its own body

    @hub.tool(connector="py", read_only=True)
    def crash(text: str) -> object:
        return text + 1  # type: ignore[operator]

    async with hub:
        with pytest.raises(InvalidArguments) as refused:
            await hub.call(ME, "py.order", {"qty": 11})
        assert refused.value.status == 422 and "qty must be at most 10, not 11" in refused.value.message
        assert refused.value.errors == [{"field": "(root)", "error": "qty must be at most 10, not 11"}]
        with pytest.raises(InvalidArguments, match="invalid literal for int"):
            await hub.call(ME, "py.parse", {"text": "ten"})
        for tool, arguments in (
            ("py.helper", {"qty": 0}),
            ("py.decode", {"text": ""}),
            ("py.crash", {"text": "a"}),
        ):
            with pytest.raises(ToolExecutionError) as failed:
                await hub.call(ME, tool, arguments)
            assert failed.value.status == 502, tool
        assert (await hub.call(ME, "py.order", {"qty": 2})).value == 2
