"""A provider behind an upstream MCP server (the official SDK's, over stdio): its tools are known only once
the hub starts, so the capability is checked then — a typo is refused at start, with file and line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.router.conftest import hub_from
from toolbridge import Principal
from toolbridge.errors import ConfigFileError, NoProviderAvailable

pytestmark = pytest.mark.anyio
SERVER = Path(__file__).parents[1] / "connectors" / "mcp" / "changing_server.py"


def config(folder: Path, provider: str, approve: str = "all-on-first-connect") -> Path:
    (folder / "description.txt").write_text("Look a key up.")
    path = folder / "toolbridge.yaml"
    path.write_text(f"""
server: {{database: "sqlite+aiosqlite:///{folder}/tb.db"}}
connectors:
  sdk:
    kind: mcp
    command: {sys.executable}
    args: ["{SERVER}"]
    env: {{TOOL_DESCRIPTION_FILE: "{folder / "description.txt"}"}}
    approve: {approve}
capabilities:
  look_up:
    description: Look a value up by its key.
    input: {{type: object, properties: {{name: {{type: string}}}}, required: [name]}}
    providers:
      - tool: {provider}
        arguments: {{key: "${{input.name}}"}}
""")
    return path


async def test_a_capability_served_by_an_mcp_tool(tmp_path: Path) -> None:
    hub = hub_from(config(tmp_path, "sdk.lookup"))
    async with hub:
        result = await hub.call(Principal.local(), "capability.look_up", {"name": "colour"})
        assert hub.get_tool(Principal.local(), "capability.look_up").annotations.read_only is False
    assert "value of colour" in result.text


async def test_a_provider_awaiting_approval_is_skipped(tmp_path: Path) -> None:
    hub = hub_from(config(tmp_path, "sdk.lookup", approve="manual"))
    async with hub:
        with pytest.raises(NoProviderAvailable) as caught:
            await hub.call(Principal.local(), "capability.look_up", {"name": "colour"})
    assert caught.value.skipped == [{"tool": "sdk.lookup", "code": "tool_quarantined"}]


async def test_an_unknown_mcp_tool_is_refused_when_the_hub_starts(tmp_path: Path) -> None:
    path = config(tmp_path, "sdk.lookpu")
    hub = hub_from(path)  # the MCP server's tools are not known before it starts
    with pytest.raises(ConfigFileError) as caught:
        async with hub:
            pass
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "sdk.lookpu" in text)
    assert caught.value.line == line and "no tool is named 'sdk.lookpu'" in caught.value.message
    assert caught.value.hint == "did you mean 'sdk.lookup'?"
