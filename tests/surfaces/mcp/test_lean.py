"""The lean stateless path answers exactly as the SDK's own dispatcher does."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Served, make_hub, serve

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
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}, "_meta": {"idempotencyKey": 5}}, {}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}}, {"mcp_name": "demo.add"}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": {"text": "x"}}, {"mcp_param_text": "x"}),
    ("alice", "tools/call", {"name": "demo.echo", "arguments": ["x"]}, {}),
]


def normalized(payload: dict[str, Any]) -> dict[str, Any]:
    result = payload.get("result")
    if isinstance(result, dict) and isinstance(result.get("_meta"), dict):
        result["_meta"].pop("toolbridge/request-id", None)
    return payload


async def answer(served: Served, agent: str, method: str, params: dict[str, Any] | None, extra: dict[str, str]):
    meta = (params or {}).get("_meta", {})
    response = await served.modern(method, params, agent=agent, **extra)
    if meta:  # the helper replaced _meta with the envelope; send the extra keys too
        body = {"jsonrpc": "2.0", "id": 7, "method": method,
                "params": {**(params or {}), "_meta": {**meta, **_envelope()}}}
        response = await served.post(body, agent=agent, mcp_protocol_version="2026-07-28", mcp_method=method,
                                     mcp_name=str((params or {}).get("name")), **extra)
    return response.status_code, normalized(response.json())


def _envelope() -> dict[str, Any]:
    from .conftest import ENVELOPE

    return ENVELOPE


@pytest.mark.parametrize(("agent", "method", "params", "extra"), CASES)
async def test_lean_and_sdk_paths_agree(
    agent: str, method: str, params: dict[str, Any] | None, extra: dict[str, str]
) -> None:
    async with serve(make_hub(), lean=True) as lean, serve(make_hub(), lean=False) as sdk:
        assert await answer(lean, agent, method, params, extra) == await answer(sdk, agent, method, params, extra)
