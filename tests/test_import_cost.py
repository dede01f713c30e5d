"""Commands that only read an OpenAPI document do not load the hub's heavy dependencies (issue 12, item 7).

Measured as *which modules a fresh process imported*, not as time: ``import toolbridge`` and
``toolbridge tools list`` / ``add openapi`` for an OpenAPI-only configuration must not import SQLAlchemy,
the MCP SDK, cryptography, Starlette or jsonschema (bench/openapi_ingest.py measures the time and memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main as typer_main

from tests._patience import patience
from tests._specs import OWN

HEAVY = ("sqlalchemy", "mcp", "cryptography", "starlette", "fastapi", "jsonschema", "toolbridge.hub")
PROBE = """
import json, sys
from toolbridge.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
tops = {m.split(".")[0] for m in sys.modules}
print(json.dumps(sorted(tops | {m for m in sys.modules if m.startswith("toolbridge.")})))
"""


def loaded(*args: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=patience(300),
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "toolbridge.yaml"
    path.write_text(
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n"
        f"connectors:\n  inc:\n    kind: openapi\n    spec: {OWN / 'incidents.json'}\n"
        "    base_url: http://127.0.0.1:9\n"
    )
    return path


def test_importing_the_package_loads_nothing_heavy(tmp_path: Path) -> None:
    code = "import json, sys, toolbridge; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=patience(300), check=True
    )
    modules = {m.split(".")[0] for m in json.loads(done.stdout)}
    assert not modules & set(HEAVY)


def test_tools_list_of_an_openapi_config_stays_light(config: Path) -> None:
    modules = loaded("tools", "list", "-c", str(config), cwd=config.parent)
    assert "toolbridge.connectors.openapi" in modules  # it did read the document
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_add_openapi_stays_light(tmp_path: Path) -> None:
    modules = loaded("add", "openapi", "inc", str(OWN / "incidents.json"), cwd=tmp_path)
    assert (tmp_path / "toolbridge.yaml").exists()
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize(("command", "expected"), [("keys", "rotate"), ("connect", "{connector}")])
def test_commands_imported_on_use_look_as_before(command: str, expected: str) -> None:
    from typer.testing import CliRunner

    from toolbridge.cli import app

    result = CliRunner().invoke(app, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert expected in result.output and "--install-completion" not in result.output


def test_help_lists_every_command_without_importing_the_heavy_ones(tmp_path: Path) -> None:
    modules = loaded("--help", cwd=tmp_path)
    assert not modules & {*HEAVY, "pydantic", "toolbridge.settings"}, sorted(modules & {*HEAVY, "pydantic"})


def test_the_help_lines_of_commands_imported_on_use_are_their_own() -> None:
    """``toolbridge --help`` shows LAZY's lines without importing the commands: they must not drift."""
    from typer._click.core import Context

    from toolbridge.cli import app
    from toolbridge.cli._lazy import LAZY, _load

    group = typer_main.get_command(app)
    for name, (_, _, line) in LAZY.items():
        command = _load(name)
        assert command.get_short_help_str(limit=200) == line, name
        assert group.get_command(Context(group), name) is not None


def hub_modules(config: Path) -> set[str]:
    """The top-level modules a fresh process imported to open (and close) a hub on ``config``."""
    code = (
        "import anyio, json, sys\nfrom toolbridge import Hub\n"
        "async def main():\n    async with Hub.from_file(sys.argv[1]):\n        pass\n"
        "anyio.run(main)\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        capture_output=True,
        text=True,
        cwd=config.parent,
        timeout=patience(300),
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_hub_with_no_mcp_upstream_does_not_load_the_mcp_sdk(config: Path) -> None:
    """A worker or a REST-only server opens a hub: the MCP SDK (about a second to import) is loaded only
    for an MCP upstream, an MCP surface or an MCP authorization discovery."""
    assert "mcp" not in hub_modules(config)


def test_an_openapi_connector_does_not_load_aiohttp(config: Path) -> None:
    """The connector sends on toolbridge's own HTTP/1.1 with aiohttp's User-Agent, made without importing
    aiohttp (~65 ms of CPU and ~10 MiB of a serving process)."""
    assert "aiohttp" not in hub_modules(config)
