"""docs/workspace.md: its Python example runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests._patience import patience

DOC = Path(__file__).parents[2] / "docs" / "workspace.md"


def test_python_example_runs(tmp_path: Path) -> None:
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    result = subprocess.run(
        [sys.executable, "-c", block],
        capture_output=True,
        text=True,
        timeout=patience(60),
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/report.md 1"


def test_cli_commands_in_the_doc_exist() -> None:
    from typer.testing import CliRunner

    from toolbridge.cli import app

    commands = set(re.findall(r"toolbridge workspace (\w+)", DOC.read_text(encoding="utf-8")))
    assert commands == {"ls", "put", "get", "rm"}
    for command in commands:
        result = CliRunner().invoke(app, ["workspace", command, "--help"])
        assert result.exit_code == 0, result.output
