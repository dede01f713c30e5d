"""Where workspace files go: next to the database by default (a desktop client starting the server in a
folder of its choosing does not split them from it), or ``blob_path`` relative to the config file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests._patience import patience
from toolbridge.cli import app

CONFIG = "connectors:\n  files:\n    kind: workspace\n{extra}"


def _setup(tmp_path: Path, extra: str = "") -> tuple[Path, str, Path]:
    conf, state, elsewhere = tmp_path / "conf", tmp_path / "state", tmp_path / "elsewhere"
    for folder in (conf, state, elsewhere):
        folder.mkdir()
    (conf / "toolbridge.yaml").write_text(CONFIG.format(extra=extra))
    (elsewhere / "report.txt").write_text("Q3\n")
    return conf / "toolbridge.yaml", f"sqlite+aiosqlite:///{state}/tb.db", elsewhere


def _put(config: Path, database: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cwd)
    args = ["workspace", "put", "report.txt", "/r.txt", "-c", str(config), "--database", database]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_files_go_next_to_the_database_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, database, elsewhere = _setup(tmp_path)
    _put(config, database, elsewhere, monkeypatch)
    assert any((tmp_path / "state" / "blobs").rglob("*")), "no content next to the database"
    assert not (elsewhere / ".toolbridge").exists()


def test_a_relative_blob_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, database, elsewhere = _setup(tmp_path, "    blob_path: contents\n")
    _put(config, database, elsewhere, monkeypatch)
    assert any((tmp_path / "conf" / "contents").rglob("*"))
    assert not (elsewhere / "contents").exists()


def test_the_stdio_server_says_where_it_keeps_its_state(tmp_path: Path) -> None:
    config, database, elsewhere = _setup(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")}
    result = subprocess.run(
        [sys.executable, "-m", "toolbridge", "mcp", "-c", str(config), "--database", database],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=elsewhere, env=env,
        timeout=patience(120),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # stdout is the protocol's
    state = tmp_path / "state"
    assert f"state: database {state / 'tb.db'}; workspace 'files' files in {state / 'blobs'}" in result.stderr
