"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests._patience import patience

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_in_process_example_runs() -> None:
    [block] = [b for b in python_blocks() if "Hub()" in b]
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=patience(60)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello, Ada"


def test_cli_commands_in_readme_exist() -> None:
    from typer.testing import CliRunner

    from toolbridge.cli import app

    text = README.read_text(encoding="utf-8")
    commands = set(re.findall(r"toolbridge ((?:tools|agents|audit) \w+|init|serve|mcp|call)\b", text))
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0, (command, result.output)
