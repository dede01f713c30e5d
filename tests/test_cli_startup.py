"""``toolbridge serve`` / ``mcp`` that cannot start say why in one ``error:`` line and a ``hint:``, exit 1,
and print no banner and no API key first. Real processes, a real port held by the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._patience import patience
from tests._serving import loopback_socket

ROOT = Path(__file__).parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def toolbridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "toolbridge", *args],
        capture_output=True,
        text=True,
        timeout=patience(120),
        cwd=cwd,
        env=env,
    )


def assert_one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> list[str]:
    assert result.returncode == 1, result
    assert result.stdout == ""  # no banner, no key
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr  # no traceback
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    for fragment in fragments:
        assert fragment in result.stderr
    return lines


def test_a_port_in_use_is_one_error_with_a_hint_before_any_banner_or_key(tmp_path: Path) -> None:
    with loopback_socket() as held:
        held.listen()
        port = held.getsockname()[1]
        database = f"sqlite+aiosqlite:///{tmp_path}/tb.db"
        result = toolbridge(
            "serve", "-c", str(QUICKSTART), "--database", database, "--port", str(port),
            "--create-agent", "assistant", cwd=tmp_path,
        )  # fmt: skip
    assert_one_error(result, f"port {port} on 127.0.0.1 is already in use", f"--port {port + 1}")
    assert "tb_" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "mcp", "worker"])
def test_no_config_is_an_error_saying_how_to_make_one(tmp_path: Path, command: str) -> None:
    result = toolbridge(command, cwd=tmp_path)
    assert_one_error(result, f"no toolbridge.yaml in {tmp_path}", "toolbridge init", "--config")


@pytest.mark.parametrize(
    ("make", "database", "says"),
    [
        (lambda p: (p / "afile").touch(), "afile/tb.db", "'{p}/afile' is a file"),
        (lambda p: (p / "afolder").mkdir(), "afolder", "'{p}/afolder' is a folder, not a file"),
    ],
    ids=["file-in-the-way", "folder-as-database"],
)
def test_an_unusable_database_path_names_the_path_and_why(
    tmp_path: Path, make: object, database: str, says: str
) -> None:
    make(tmp_path)  # type: ignore[operator]
    url = f"sqlite+aiosqlite:///{tmp_path}/{database}"
    result = toolbridge("serve", "-c", str(QUICKSTART), "--database", url, "--port", "0", cwd=tmp_path)
    assert_one_error(result, says.format(p=tmp_path), "--database")


def test_serving_with_an_agent_that_is_not_declared_says_how_to_declare_or_create_it(tmp_path: Path) -> None:
    """The hint offered ``--scope``, which ``serve`` does not take (``agents create`` does)."""
    database = f"sqlite+aiosqlite:///{tmp_path}/tb.db"
    result = toolbridge(
        "serve", "-c", str(QUICKSTART), "--database", database, "--port", "0", "--create-agent", "nobody",
        cwd=tmp_path,
    )  # fmt: skip
    lines = assert_one_error(
        result, "agent 'nobody' does not exist", "toolbridge agents create nobody --scope"
    )
    assert "agents:" in lines[1]  # or declared in the file


@pytest.mark.parametrize(
    ("database", "says"),
    [
        (
            "postgresql://u:pw-canary@h:notaport/db",
            "'postgresql://u:***@h:notaport/db' is not a database URL",
        ),
        ("not a url", "'not a url' is not a database URL"),
    ],
)
def test_a_malformed_database_url_is_one_error_without_its_password(
    tmp_path: Path, database: str, says: str
) -> None:
    """A port that is no number raised a ValueError with a traceback (found by an outside probe)."""
    result = toolbridge("agents", "list", "-c", str(QUICKSTART), "--database", database, cwd=tmp_path)
    assert_one_error(result, says, "postgresql+asyncpg://user@host:5432/db")
    assert "pw-canary" not in result.stderr


def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """--port 99999 served on 34463 (99999 mod 65536) under a banner saying 99999."""
    result = toolbridge("serve", "-c", str(QUICKSTART), "--port", "99999", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and "65535" in result.stderr


READERS = [["audit", "verify"], ["audit", "tail"], ["agents", "list"], ["outbox"], ["secrets", "list"]]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_command_that_reads_state_where_there_is_no_database_says_so(
    command: list[str], tmp_path: Path
) -> None:
    """``toolbridge audit verify`` run in the wrong folder created an empty database there and reported
    "audit log intact: 0 rows verified": a read never creates a database, and says where it looked."""
    result = toolbridge(*command, cwd=tmp_path)
    where = tmp_path / ".toolbridge" / "toolbridge.db"
    assert_one_error(result, f"error: no database at {where}", "'toolbridge serve' creates it", "--database")
    assert not (tmp_path / ".toolbridge").exists()


@pytest.mark.parametrize("command", [["tools", "search", "calculate"], ["tools", "show", "util.calculate"]])
def test_showing_the_tools_creates_no_database(command: list[str], tmp_path: Path) -> None:
    """The catalog needs no recorded state: shown in a fresh folder, it leaves no database behind."""
    result = toolbridge(*command, "-c", str(QUICKSTART), cwd=tmp_path)
    assert result.returncode == 0 and "util.calculate" in result.stdout, result
    assert not (tmp_path / ".toolbridge" / "toolbridge.db").exists()


def test_a_scope_that_matches_no_tool_is_warned_of_naming_what_was_meant(tmp_path: Path) -> None:
    """A typo in a scope (``utl.*:read``) gave an agent that saw nothing, without a word: it is warned of
    at start (not refused: an upstream's tools may appear later), with the closest names."""
    text = QUICKSTART.read_text().replace(
        'scopes: ["*:read"]', 'scopes: ["*:read", "utl.*:read", "notes.remove"]'
    )
    config = tmp_path / "toolbridge.yaml"
    config.write_text(text)
    (tmp_path / "quickstart_tools.py").write_text((ROOT / "examples" / "quickstart_tools.py").read_text())
    result = toolbridge("tools", "list", cwd=tmp_path)
    assert result.returncode == 0 and "util.calculate" in result.stdout, result
    assert result.stderr.splitlines() == [
        "agents.reader.scopes: 'utl.*:read' matches no tool, so it allows nothing (did you mean "
        "'util.*:read'?; no connector 'utl'; connectors: notes, util, workspace)",
        "agents.reader.scopes: 'notes.remove' matches no tool, so it allows nothing (did you mean "
        "'notes.delete'?; connector 'notes' has: add, delete, list)",
    ]
    quiet = toolbridge("tools", "list", "-c", str(QUICKSTART), cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_usage_error_read_by_a_program_is_plain_lines(tmp_path: Path) -> None:
    """Typer drew usage errors in a box of Unicode lines, hard to read for an agent or in a log: when
    stderr is no terminal they are Click's plain lines, the error on one line, exit code 2."""
    for args, error in (
        (["tool"], "Error: No such command 'tool'. Did you mean 'tools'?"),
        (["tools", "list", "--jsn"], "Error: No such option: --jsn (Possible options: --json)"),
    ):
        result = toolbridge(*args, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == "", result
        assert result.stderr.splitlines()[-1] == error, result.stderr
        assert result.stderr.startswith("Usage: toolbridge ") and "╭" not in result.stderr


def _banner(tmp_path: Path, agent: str) -> str:
    """What ``serve --create-agent AGENT`` prints up to 'stop with Ctrl-C' (then it is stopped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")} | {"NO_COLOR": "1"}
    database = f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    args = ["serve", "-c", str(QUICKSTART), "--database", database, "--port", "0", "--create-agent", agent]
    with subprocess.Popen(
        [sys.executable, "-m", "toolbridge", *args], stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env
    ) as process:
        assert process.stdout is not None
        lines = []
        try:
            for line in process.stdout:  # ends at the banner's last line (or when the process ends)
                lines.append(line)
                if "stop with Ctrl-C" in line:
                    break
        finally:
            process.terminate()
            process.wait(timeout=patience(30))
    return "".join(lines)


@pytest.mark.parametrize(
    ("agent", "says"),
    [
        ("ops", "(sign in with the key below)"),
        ("assistant", "(sign in with an operator's key, not the one below: see docs/admin-ui.md)"),
    ],
)
def test_the_banner_says_whether_its_key_signs_in_to_the_admin_ui(
    tmp_path: Path, agent: str, says: str
) -> None:
    """`make run` printed the key of 'assistant', not an operator, next to 'sign in with an operator's key':
    pasted into the sign-in form, it was refused."""
    printed = _banner(tmp_path, agent)
    [line] = [line for line in printed.splitlines() if "admin UI:" in line]
    assert says in line, printed
