"""Every surface reads the API key and limits the request body the same way (surfaces/_request.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from tests.surfaces.test_one_call_path import Env, running
from toolbridge.surfaces._request import RequestHeaders, api_key

pytestmark = pytest.mark.anyio

MCP_PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running(tmp_path) as served:
        yield served


async def _each_surface(env: Env, headers: dict[str, str]) -> dict[str, bool]:
    """Whether each surface that takes an API key accepted the request's key (answered other than 401)."""
    http = env.http
    answers = {
        "rest": await http.get("/v1/tools", headers=headers),
        "connections": await http.get("/v1/connections", headers=headers),
        "events": await http.get("/v1/events/subscriptions", headers=headers),
        "workspace": await http.get("/v1/workspaces/", headers=headers),
        "mcp": await http.post("/mcp", json=MCP_PING, headers={**MCP, **headers}),
    }
    return {name: response.status_code != 401 for name, response in answers.items()}


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("bearer", True),
        ("x-api-key", True),
        ("lowercase bearer", True),
        ("wrong key", False),
        ("basic", False),
    ],
)
async def test_every_surface_reads_the_key_the_same_way(env: Env, form: str, expected: bool) -> None:
    headers = {
        "bearer": {"Authorization": f"Bearer {env.key}"},
        "x-api-key": {"X-API-Key": env.key},
        "lowercase bearer": {"Authorization": f"bearer  {env.key} "},
        "wrong key": {"Authorization": "Bearer tb_not_a_key"},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
    }[form]
    statuses = await _each_surface(env, headers)
    assert set(statuses.values()) == {expected}, statuses


def test_a_bearer_key_wins_over_x_api_key_and_an_empty_bearer_is_no_key() -> None:
    assert api_key({"authorization": "Bearer a", "x-api-key": "b"}) == "a"
    assert api_key({"authorization": "Bearer ", "x-api-key": "b"}) == "b"
    assert api_key({"authorization": "Bearer "}) is None
    assert api_key({}) is None


def test_request_headers_answer_as_starlettes_headers() -> None:
    """The gate's headers (a dict of first values) find what Starlette's find: case-blind, first wins."""
    scope = {"headers": [(b"x-key", b"first"), (b"accept", b"*/*"), (b"x-key", b"second")]}
    fast, slow = RequestHeaders(scope=scope), Headers(scope=scope)
    for name in ("X-Key", "x-key", "ACCEPT", "origin"):
        assert fast.get(name) == slow.get(name)
        assert (name in fast) == (name in slow)
    assert fast["X-KEY"] == "first" and fast.getlist("x-key") == ["first", "second"]
    with pytest.raises(KeyError):
        fast["origin"]


async def test_every_surface_refuses_an_oversized_body_with_the_same_problem(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        big = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
        auth = {"Authorization": f"Bearer {env.key}", "Content-Type": "application/json"}
        answers = [
            await env.http.post("/v1/tools/demo.echo/call", content=big, headers=auth),
            await env.http.post("/mcp", content=big, headers={**MCP, **auth}),
            await env.http.post("/v1/workspaces/", content=big[:100_000] + b'"}', headers=auth),
        ]
    for response in answers:
        assert response.status_code == 413, response.text
    sizes = [(r.json().get("size"), r.json().get("limit")) for r in answers[:1]]
    assert sizes == [(len(big), 1_048_576)]
