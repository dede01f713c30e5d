"""docs/openapi.md: its configuration and Python examples work as written."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests._patience import patience
from tests._specs import OWN
from toolbridge.cli import app
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.hub import Hub
from toolbridge.settings import parse_settings

ROOT = Path(__file__).parents[3]
DOC = ROOT / "docs" / "openapi.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_yaml_example_configures_what_it_says(tmp_path: Path) -> None:
    [block] = blocks("yaml")
    config = tmp_path / "toolbridge.yaml"
    (tmp_path / "specs").mkdir()
    shutil.copy(OWN / "incidents.json", tmp_path / "specs" / "pagerduty-rest.json")  # its shape, in spec_root
    config.write_text("server: {database: 'sqlite+aiosqlite:///:memory:'}\n" + block)
    hub = Hub.from_settings(parse_settings(config.read_text(), source=config))
    connector = hub.connector("pagerduty")
    assert isinstance(connector, OpenAPIConnector) and connector.report.error is None
    assert hub.catalog.get("pagerduty.incidents").description == "Incidents, newest first"
    assert hub.catalog.get("pagerduty.create_incident").annotations.destructive
    assert all(connector.operation(t.name).method != "DELETE" for t in connector.tools())


def test_the_python_example_runs(tmp_path: Path) -> None:
    [block] = blocks("python")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "petstore.yaml").symlink_to(OWN / "petstore.yaml")
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=patience(60), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "3 operations, 3 tools" in result.stdout


def test_the_commands_exist() -> None:
    runner = CliRunner()
    for command in (["add", "openapi"], ["tools", "list"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
