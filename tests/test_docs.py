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


def test_cli_options_the_docs_name_exist() -> None:
    """Each ``toolbridge … --option`` written inline in the docs names an option the command has
    (docs/mcp-upstream.md told users ``connections add remote --secret-stdin``: "No such option")."""
    from typer.testing import CliRunner

    from toolbridge.cli import app

    runner = CliRunner()
    docs = [README, *sorted((README.parent / "docs").glob("*.md"))]
    spans = {s for doc in docs for s in re.findall(r"`toolbridge ([^`]*--[a-z][^`]*)`", doc.read_text())}
    assert spans, "the docs name no command options: the pattern is wrong"
    for span in sorted(spans):
        words = span.split()
        first = next((i for i, w in enumerate(words) if w.startswith("--")), None)
        if first is None:
            continue
        result = runner.invoke(app, [*words[:first], "--help"], terminal_width=200)
        if result.exit_code != 0:
            continue  # not a command line (a fragment with placeholders): test_cli_commands covers commands
        for option in (w.split("=")[0] for w in words[first:] if w.startswith("--")):
            assert option in result.output, f"`toolbridge {span}`: {option} is no option of that command"
