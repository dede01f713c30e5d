"""``toolbridge workspace ls | put | get | rm`` in-process against a configured hub."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from toolbridge.cli import app

CONFIG = """
server: {database: "sqlite+aiosqlite:///state/tb.db"}
connectors:
  files:
    kind: workspace
    workspace: team
    blob_path: state/blobs
"""


def test_put_ls_get_rm(in_tmp_dir: Path) -> None:
    (in_tmp_dir / "toolbridge.yaml").write_text(CONFIG)
    source = in_tmp_dir / "report.bin"
    data = bytes(range(256)) * 5000
    source.write_bytes(data)
    runner = CliRunner()
    put = runner.invoke(app, ["workspace", "put", str(source), "/reports/r.bin"])
    assert put.exit_code == 0, put.output
    assert "version 1" in put.output
    listed = runner.invoke(app, ["workspace", "ls", "/reports"])
    assert listed.exit_code == 0 and "/reports/r.bin" in listed.output
    got = runner.invoke(app, ["workspace", "get", "/reports/r.bin", str(in_tmp_dir / "copy.bin")])
    assert got.exit_code == 0, got.output
    assert (in_tmp_dir / "copy.bin").read_bytes() == data
    removed = runner.invoke(app, ["workspace", "rm", "/reports/r.bin"])
    assert removed.exit_code == 0 and "trash" in removed.output
    missing = runner.invoke(app, ["workspace", "get", "/reports/r.bin"])
    assert missing.exit_code == 1 and "no file or folder" in missing.output
