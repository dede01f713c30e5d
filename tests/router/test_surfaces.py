"""The router on the surfaces: REST call and listing, ``toolbridge capabilities list | test``."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import anyio
import httpx2
import pytest
from typer.testing import CliRunner, Result

from tests.router.conftest import hub_from, write_config
from tests.surfaces.mcp.conftest import ENVELOPE, MODERN
from toolbridge.cli import app
from toolbridge.surfaces.app import create_app
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
FILE = {"path": "a.txt", "content": "hi"}


async def test_rest_calls_and_lists_capabilities(
    tmp_path: Path, sqlite_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(*[Reply(503)] * 3)
    agents = "agents:\n  bot: {scopes: ['capability.*']}\n  ops: {scopes: ['*']}\n"
    hub = hub_from(write_config(tmp_path, sqlite_url, primary, backup, agents=agents))
    web = create_app(hub)
    async with web.router.lifespan_context(web):
        bot, ops = await hub.agents.create("bot"), await hub.agents.create("ops")
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url="http://t") as http:
            as_bot = {"Authorization": f"Bearer {bot}"}
            called = await http.post(
                "/v1/tools/capability.store_file/call", json={"arguments": FILE}, headers=as_bot
            )
            listed = (await http.get("/v1/capabilities", headers=as_bot)).json()["capabilities"]
            detail = (await http.get("/v1/capabilities", headers={"Authorization": f"Bearer {ops}"})).json()
    assert called.status_code == 200 and called.json()["result"] == {"ok": True}
    assert [c["tool"] for c in listed] == ["capability.store_file"] and "providers" not in listed[0]
    providers = detail["capabilities"][0]["providers"]
    assert [(p["tool"], p["breaker"]) for p in providers] == [
        ("primary.put_object", "open"),
        ("backup.upload_file", "closed"),
    ]
    assert providers[1]["arguments"] == {
        "name": "${input.path}",
        "data": "${input.content}",
        "folder": "fallback",
    }


async def test_rest_lists_and_describes_a_capabilitys_tool(
    tmp_path: Path, sqlite_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    """``GET /v1/tools`` (no search) and ``GET /v1/tools/capability.store_file`` answered 500: the
    capability's input schema is a read-only mapping the REST serializer could not write (schemathesis
    found it against a configuration with a router)."""
    primary, backup = upstreams
    agents = "agents:\n  bot: {scopes: ['capability.*']}\n"
    hub = hub_from(write_config(tmp_path, sqlite_url, primary, backup, agents=agents))
    web = create_app(hub)
    async with web.router.lifespan_context(web):
        bot = {"Authorization": f"Bearer {await hub.agents.create('bot')}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url="http://t") as http:
            listed = await http.get("/v1/tools", headers=bot)
            one = await http.get("/v1/tools/capability.store_file", headers=bot)
    assert listed.status_code == 200, listed.text
    assert [t["name"] for t in listed.json()["tools"]] == ["capability.store_file"]
    assert one.status_code == 200, one.text
    assert one.json()["input_schema"]["required"] == ["path", "content"]


async def test_mcp_calls_a_capability_in_the_stateless_era(
    tmp_path: Path, sqlite_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    """A stateless-era ``tools/call`` of a capability answered a bare HTTP 500: the lean path looked for
    ``x-mcp-header`` by writing the input schema as JSON, and a capability's is a read-only mapping (found
    by an outside secrets probe calling capabilities over MCP)."""
    primary, backup = upstreams
    hub = hub_from(write_config(tmp_path, sqlite_url, primary, backup))
    web = create_app(hub)
    call = {"name": "capability.store_file", "arguments": FILE}
    accept = {"accept": "application/json, text/event-stream"}
    async with web.router.lifespan_context(web):
        bot = {"Authorization": f"Bearer {await hub.agents.create('bot')}", **accept}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=web), base_url="http://t") as http:
            modern = await http.post(
                "/mcp",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {**call, "_meta": ENVELOPE},
                },
                headers={
                    **bot,
                    "mcp-protocol-version": MODERN,
                    "mcp-method": "tools/call",
                    "mcp-name": call["name"],
                },
            )
    assert modern.status_code == 200, modern.text
    assert modern.json()["result"]["structuredContent"] == {"ok": True}


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


async def test_cli_lists_and_tests_a_capability(
    in_tmp_dir: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(*[Reply(503)] * 3)
    config = str(write_config(in_tmp_dir, f"sqlite+aiosqlite:///{in_tmp_dir}/tb.db", primary, backup))
    listed = await anyio.to_thread.run_sync(partial(cli, "capabilities", "list", "-c", config, "--json"))
    assert listed.exit_code == 0, listed.output
    [doc] = [json.loads(line) for line in listed.output.splitlines()]
    assert doc["tool"] == "capability.store_file" and doc["choice"] == "ordered"

    dry = await anyio.to_thread.run_sync(
        partial(
            cli,
            "capabilities",
            "test",
            "store_file",
            "-c",
            config,
            "--dry-run",
            "-a",
            "path=a.txt",
            "-a",
            "content=hi",
        )
    )
    assert dry.exit_code == 0, dry.output
    assert '1. primary.put_object {"key": "a.txt", "body": "hi"} ok' in dry.output
    assert primary.requests == [] and backup.requests == [], "a dry run calls nothing"

    tried = await anyio.to_thread.run_sync(
        partial(cli, "capabilities", "test", "store_file", "-c", config, "--json", json.dumps(FILE))
    )
    assert tried.exit_code == 0, tried.output
    assert "primary.put_object: not served (upstream_status)" in tried.output
    assert "backup.upload_file: served" in tried.output


async def test_cli_names_an_unknown_capability(in_tmp_dir: Path) -> None:
    config = str(
        write_config(
            in_tmp_dir, f"sqlite+aiosqlite:///{in_tmp_dir}/tb.db", "http://127.0.0.1:9", "http://127.0.0.1:9"
        )
    )
    result = await anyio.to_thread.run_sync(
        partial(cli, "capabilities", "test", "stor_file", "-c", config, "--dry-run")
    )
    assert result.exit_code == 1 and "capability.store_file" in result.output
