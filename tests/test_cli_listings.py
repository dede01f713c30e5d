# ruff: noqa: F811  (the run fixture comes from tests/test_cli.py)
"""Listing commands for scripts: ``--json`` (one object per line), tables never cut when not on a
terminal, ``--version``, ``--database`` everywhere, and a folder that outlives its last file."""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.test_cli import EXAMPLE, run  # noqa: F401  (the fixture)


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_version(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("--version")
    assert code == 0 and out.strip() == f"toolbridge {version('toolbridge')}"


def test_tools_list_json_and_a_table_that_cuts_nothing(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("tools", "list", "-c", EXAMPLE, "--json")
    assert code == 0
    tools = _lines(out)
    assert {"notes.add", "util.calculate", "workspace.read"} <= {t["name"] for t in tools}
    assert all({"name", "connector", "access", "description"} <= t.keys() for t in tools)
    longest = max((str(t["summary"]) for t in tools), key=len)
    assert len(longest) > 80  # the quickstart has one: a terminal-less table used to cut it at 80
    code, table = run("tools", "list", "-c", EXAMPLE)
    assert code == 0 and longest in table and "…" not in table


def test_agents_list_json(run) -> None:  # type: ignore[no-untyped-def]
    run("agents", "create", "ci-bot", "--scope", "util.*:read", "-c", EXAMPLE)
    code, out = run("agents", "list", "-c", EXAMPLE, "--json")
    assert code == 0
    bot = next(a for a in _lines(out) if a["name"] == "ci-bot")
    assert bot["scopes"] == ["util.*:read"] and bot["active_keys"] == 1


def test_outbox_json_is_empty_lines_when_empty(run) -> None:  # type: ignore[no-untyped-def]
    run("call", "util.calculate", "--arg", "expression=1", "-c", EXAMPLE)  # the database is there
    code, out = run("outbox", "-c", EXAMPLE, "--json")
    assert code == 0 and out.strip() == ""


def test_outbox_refuses_a_state_that_does_not_exist(run) -> None:  # type: ignore[no-untyped-def]
    """``--state faild`` listed nothing, as if no write had failed (found by an outside chaos check)."""
    run("call", "util.calculate", "--arg", "expression=1", "-c", EXAMPLE)  # the database is there
    code, out = run("outbox", "-c", EXAMPLE, "--state", "faild")
    assert code == 1 and "no outbox state 'faild'; did you mean 'failed'?" in out, out
    assert "queued, running, parked, done, failed" in out
    assert run("outbox", "-c", EXAMPLE, "--state", "parked")[0] == 0


def test_a_folder_stays_when_its_last_file_is_deleted(run, in_tmp_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (in_tmp_dir / "report.txt").write_text("Q3: all good\n")
    assert run("workspace", "put", "report.txt", "/reports/q3.txt", "-c", EXAMPLE)[0] == 0
    code, out = run("workspace", "ls", "/reports", "-c", EXAMPLE, "--json")
    assert code == 0 and [e["path"] for e in _lines(out)] == ["/reports/q3.txt"]
    assert run("workspace", "rm", "/reports/q3.txt", "-c", EXAMPLE)[0] == 0
    code, out = run("workspace", "ls", "/reports", "-c", EXAMPLE, "--json")
    assert code == 0, out
    assert _lines(out) == []
    code, out = run("workspace", "ls", "/", "-c", EXAMPLE, "--json")
    assert [(e["path"], e["kind"]) for e in _lines(out)] == [("/reports", "folder")]


@pytest.mark.parametrize(
    "command",
    [
        ["connect"],
        ["connections", "list"],
        ["connections", "add"],
        ["connections", "test"],
        ["connections", "remove"],
        ["keys", "rotate"],
        ["keys", "rewrap"],
        ["agents", "list"],
        ["audit", "tail"],
        ["workspace", "ls"],
        ["tools", "list"],
    ],
)
def test_every_command_on_the_database_takes_database(run, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    code, out = run(*command, "--help")
    assert code == 0 and "--database" in out


def test_what_users_and_upstreams_wrote_is_printed_as_written(run) -> None:  # type: ignore[no-untyped-def]
    """Rich read ``:smile:`` as an emoji and ``[redacted]`` as markup: an error said ``no tool named
    'util.x😄'`` and a stored error lost its ``[redacted]``."""
    code, out = run("call", "util.x:smile:", "-c", EXAMPLE)
    assert code == 1 and "no tool named 'util.x:smile:'" in out
    from io import StringIO

    from toolbridge.cli._output import console, show

    printed = console()
    printed.file = StringIO()
    show(printed, [{"error": "auth Basic [redacted]) :fire:"}], {"last error": "error"}, as_json=False)
    assert "auth Basic [redacted]) :fire:" in printed.file.getvalue()


def test_tools_show_finds_an_upstream_mcp_tool_and_says_it_is_quarantined(  # type: ignore[no-untyped-def]
    run, in_tmp_dir: Path
) -> None:
    """'tools list' showed the upstream's tools; 'tools show' of one said "no tool named" (it never
    reached the upstream, and hid quarantined tools from the operator; found by an outside probe)."""
    server = Path(__file__).parent / "e2e" / "echo_stdio_server.py"
    config = in_tmp_dir / "toolbridge.yaml"
    config.write_text(
        f"""
server: {{database: "sqlite+aiosqlite:///tb.db"}}
connectors:
  echo:
    kind: mcp
    command: {json.dumps(sys.executable)}
    args: [{json.dumps(str(server))}]
"""
    )
    code, out = run("tools", "show", "echo.headers", "-c", str(config))
    assert code == 0, out
    shown = json.loads(out)
    assert shown["name"] == "echo.headers" and "not been approved" in shown["quarantined"]
