"""The toolbridge command, run as a user would (typer's runner, real files, real SQLite)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolbridge.cli import app

EXAMPLE = str(Path(__file__).parents[1] / "examples" / "quickstart.yaml")


@pytest.fixture
def run(in_tmp_dir: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        return result.exit_code, result.output

    return invoke


def test_init_writes_a_starter_and_refuses_to_overwrite(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    code, out = run("init")
    assert code == 0 and (in_tmp_dir / "toolbridge.yaml").exists()
    code, out = run("init")
    assert code == 1 and "already exists" in out
    code, out = run("tools", "list")  # the starter has no connectors yet
    assert code == 0


def test_tools_list_show_and_call(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("tools", "list", "-c", EXAMPLE)
    assert code == 0 and "notes.delete" in out and "destructive" in out
    code, out = run("tools", "show", "util.calculate", "-c", EXAMPLE)
    assert code == 0 and '"expression"' in out
    code, out = run("call", "util.calculate", "--arg", "expression=2**10", "-c", EXAMPLE)
    assert code == 0 and out.strip() == "1024.0"
    code, out = run("call", "notes.add", "--json", '{"text": "from cli", "tags": ["a"]}', "-c", EXAMPLE)
    assert code == 0 and '"from cli"' in out


def test_tools_search(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("tools", "search", "remove a note", "-c", EXAMPLE)
    assert code == 0 and out.index("notes.delete") < out.index("notes.add")
    code, out = run("tools", "search", "book a flight to Paris", "-c", EXAMPLE)
    assert code == 0 and "no good match" in out and "notes:" in out
    code, out = run("tools", "search", "remove a note", "--json", "-c", EXAMPLE)
    assert code == 0 and json.loads(out)["tools"][0]["name"] == "notes.delete"


def test_call_errors_are_one_clear_line(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("call", "util.calc", "-c", EXAMPLE)
    assert code == 1 and "no tool named 'util.calc'" in out and "did you mean 'util.calculate'" in out
    code, out = run("call", "util.calculate", "--arg", "expr=1", "-c", EXAMPLE)
    assert code == 1 and "unknown field 'expr'" in out


def test_agents_lifecycle(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("agents", "create", "bot", "--scope", "util.*:read", "-c", EXAMPLE)
    assert code == 0
    key = out.strip().splitlines()[-1]
    assert key.startswith("tb_")
    code, out = run("agents", "list", "-c", EXAMPLE)
    assert code == 0 and "bot" in out and "util.*:read" in out and "assistant" in out
    code, out = run("agents", "revoke", "bot", "-c", EXAMPLE)
    assert code == 0 and "revoked 1 key(s)" in out
    code, out = run("agents", "create", "Bad Name", "--scope", "*", "-c", EXAMPLE)
    assert code == 1 and "is not valid" in out


def test_revoking_an_unknown_agent_lists_the_agents(run) -> None:  # type: ignore[no-untyped-def]
    """'error: no agent named 'nobody'' and nothing else when no name was close."""
    code, out = run("agents", "revoke", "nobody", "-c", EXAMPLE)
    assert code == 1 and "no agent named 'nobody'" in out
    assert "hint: agents here: assistant, ops, reader" in out
    code, out = run("agents", "revoke", "nobody", "--database", "sqlite+aiosqlite:///empty.db")
    assert code == 1 and "this database has no agents" in out


def test_audit_tail_and_verify_detect_an_edit(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    run("call", "util.text_stats", "--arg", "text=a b", "-c", EXAMPLE)
    run("call", "util.nope", "-c", EXAMPLE)
    code, out = run("audit", "tail", "--json", "-c", EXAMPLE)
    assert code == 0
    assert '"tool": "util.text_stats"' in out and '"error_code": "tool_not_found"' in out
    code, out = run("audit", "verify", "-c", EXAMPLE)
    assert code == 0 and "2 rows verified" in out
    with sqlite3.connect(in_tmp_dir / ".toolbridge" / "toolbridge.db") as db:
        db.execute("UPDATE audit_events SET outcome = 'ok' WHERE seq = 2")
    code, out = run("audit", "verify", "-c", EXAMPLE)
    assert code == 1 and "tampered at row 2" in out


@pytest.mark.parametrize(
    "command",
    [["call", "util.now"], ["tools", "list"], ["tools", "show", "util.now"], ["tools", "search", "x"]],
)
def test_a_tools_command_without_a_configuration_says_so(run, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    """In a folder without toolbridge.yaml, 'tools list' printed an empty table and 'call' said "no tool
    named 'util.now'" with a hint about tools/list and GET /v1/tools: neither said the file was missing."""
    code, out = run(*command)
    assert code == 1 and "error: no configuration: there is no toolbridge.yaml in" in out
    assert "toolbridge init" in out and "--config" in out


def test_an_unknown_tool_with_nothing_close_points_at_tools_list(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("call", "zzz.qqq", "-c", EXAMPLE)
    assert code == 1 and f"hint: see the tools with 'toolbridge tools list -c {EXAMPLE}'" in out


def test_bad_config_exits_1_with_location(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (in_tmp_dir / "toolbridge.yaml").write_text("servr:\n  port: 1\n")
    code, out = run("tools", "list")
    assert code == 1 and "toolbridge.yaml:1: servr: unknown key" in out and "did you mean 'server'?" in out
