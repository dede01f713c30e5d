"""docs/credentials.md: its Python example runs, its YAML is valid configuration, its commands exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests._patience import patience
from toolbridge.cli import app
from toolbridge.settings import parse_settings

DOC = Path(__file__).parents[2] / "docs" / "credentials.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_python_example_runs() -> None:
    [block] = blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=patience(60), check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'authorized': True}"


def test_yaml_example_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolbridge import Hub

    [block] = blocks("yaml")
    settings = parse_settings(block, source=tmp_path / "toolbridge.yaml")
    monkeypatch.setenv("GITHUB_CLIENT_SECRET", "x")
    hub = Hub.from_settings(settings)
    assert hub.credentials is not None and set(hub.credentials.bindings) == {"github", "weather"}


def test_commands_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    commands = set(re.findall(r"toolbridge ((?:keys|connections) \w+|connect)\b", text))
    assert {"keys init", "keys rotate", "keys rewrap", "connections add", "connect"} <= commands
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
