"""docs/patterns.md's router section: its example configuration is examples/router.yaml, and its commands
run as written (from a scratch folder: the example keeps its database and notes under ./.toolbridge)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolbridge.cli import app

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "patterns.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / "examples" / "router.yaml"


def router_section() -> str:
    return DOC.split("## Router", 1)[1].split("\n## ", 1)[0]


def test_the_documented_configuration_is_the_example() -> None:
    [block] = re.findall(r"```yaml\n(.*?)```", router_section(), re.S)
    assert block in EXAMPLE.read_text(encoding="utf-8")


def test_the_documented_commands_run_and_fall_back(in_tmp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = re.findall(r"```sh\n(.*?)```", router_section(), re.S)
    outputs = []
    for line in block.strip().splitlines():
        words = shlex.split(line.replace("examples/router.yaml", str(EXAMPLE)))
        monkeypatch.delenv("ARCHIVE_DOWN", raising=False)
        while re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # leading NAME=value: the command's environment
            name, value = words.pop(0).split("=", 1)
            monkeypatch.setenv(name, value)
        assert words[0] == "toolbridge"
        result = CliRunner().invoke(app, words[1:])
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    listed, dry, fell_back = outputs
    assert "capability.remember" in listed and "archive.save (closed)" in listed
    assert '1. archive.save {"body": "hello", "folder": "ideas"} ok' in dry
    assert '2. notes.add {"text": "hello", "tags": ["ideas"]} ok' in dry
    assert "archive.save: not served (upstream_status)\nnotes.add: served\n" in fell_back
    assert fell_back.endswith('"kept_in":"notes"}\n')  # the capability's answer (its result mapping)
    assert not (in_tmp_dir / ".toolbridge" / "archive").exists(), "the archive was down throughout"


def test_the_documented_load_error_is_what_the_example_gives_for_a_typo(in_tmp_dir: Path) -> None:
    [expected] = re.findall(r"```text\n(error: .*?)```", router_section(), re.S)
    text = EXAMPLE.read_text(encoding="utf-8").replace("- tool: archive.save", "- tool: archive.sav")
    (in_tmp_dir / "toolbridge.yaml").write_text(text)
    result = CliRunner().invoke(app, ["capabilities", "list", "-c", "toolbridge.yaml"])
    assert result.exit_code == 1
    shown = result.output.replace(f"{in_tmp_dir.resolve()}/", "")
    assert " ".join(shown.split()) == " ".join(expected.split())
