"""The lean stateless path answers exactly as the SDK's own dispatcher does."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ENVELOPE, MODERN, Served, make_hub, serve

pytestmark = pytest.mark.anyio

CASES: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
    ("alice", "tools/list", None, {}),
    ("reader", "tools/list", None, {}),
    ("alice", "tools/call", {"name": "demo.add", "arguments": {"a": 1, "b": 2}}, {}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "héllo"}}, {}),
    ("alice", "tools/call", {"name": "demo.add", "arguments": {"a": "x"}}, {}),
    ("alice", "tools/call", {"name": "demo.ecko", "arguments": {}}, {}),
    ("reader", "tools/call", {"name": "demo.add", "arguments": {"a": 1, "b": 2}}, {}),
    ("alice", "tools/call", {"name": "demo.big", "arguments": {"size": 9_000}}, {}),
    ("alice", "tools/call", {"name": "demo.fail", "arguments": {"reason": "boom"}}, {}),
    ("alice", "tools/call", {"name": "admin.wipe"}, {}),
    (
        "alice",
        "tools/call",
        {"name": "demo.echo", "arguments": {"text": "x"}, "_meta": {"idempotencyKey": 5}},
        {},
    ),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}}, {"mcp_name": "demo.add"}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}}, {"mcp_param_text": "x"}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": ["x"]}, {}),
]


def normalized(payload: dict[str, Any]) -> dict[str, Any]:
    result = payload.get("result")
    if isinstance(result, dict) and isinstance(result.get("_meta"), dict):
        result["_meta"].pop("toolbridge/request-id", None)
    return payload


async def answer(
    served: Served, agent: str, method: str, params: dict[str, Any] | None, extra: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    params = dict(params or {})
    meta = {**params.pop("_meta", {}), **ENVELOPE}
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}
    routing = {"mcp_protocol_version": MODERN, "mcp_method": method}
    if "name" in params:
        routing["mcp_name"] = params["name"]
    response = await served.post(body, agent=agent, **{**routing, **extra})
    return response.status_code, normalized(response.json())


@pytest.mark.parametrize(("agent", "method", "params", "extra"), CASES)
async def test_lean_and_sdk_paths_agree(
    agent: str, method: str, params: dict[str, Any] | None, extra: dict[str, str]
) -> None:
    async with serve(make_hub(), lean=True) as lean, serve(make_hub(), lean=False) as sdk:
        assert await answer(lean, agent, method, params, extra) == await answer(
            sdk, agent, method, params, extra
        )
