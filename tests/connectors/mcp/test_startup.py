"""Starting upstream stdio servers: slow ones are waited for in one era, failed ones retried and shown.

The probe timeout is injected (50 ms) instead of waiting 10 s; the slow server really is slow: it reads
nothing until the test has seen toolbridge log that it is still waiting, as long after the probe timeout
as the machine takes.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._patience import patience
from toolbridge import Principal
from toolbridge.connectors._events import ListChanged
from toolbridge.connectors.mcp import McpConnector, StdioServer
from toolbridge.hub import Hub
from toolbridge.surfaces.app import create_app

from .conftest import hub_with

pytestmark = pytest.mark.anyio
LOCAL = Principal.local()
HERE = Path(__file__).parent


class _Watch(logging.Handler):
    """Calls ``then`` for each log record containing ``text``."""

    def __init__(self, text: str, then: Callable[[], None]) -> None:
        super().__init__(logging.INFO)
        self.text, self.then = text, then

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.then()


@pytest.fixture
def mcp_log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="toolbridge.connectors.mcp")
    return logging.getLogger("toolbridge.connectors.mcp")


def _joined(hub: Hub, connector: McpConnector) -> anyio.Event:
    """Set when the connector's tools (re)join the hub's catalog (the hub says so on its event bus)."""
    joined = anyio.Event()
    hub.events.subscribe(
        lambda event: joined.set() if event == ListChanged(connector.name, "tools") else None
    )
    return joined


def _raw(tmp_path: Path, mode: str) -> tuple[StdioServer, Path, Path]:
    starts, mode_file = tmp_path / "starts.log", tmp_path / "mode"
    mode_file.write_text(mode)
    env = {"STARTS_FILE": str(starts), "MODE_FILE": str(mode_file)}
    return (
        StdioServer(command=sys.executable, args=(str(HERE / "raw_server.py"),), env=env),
        starts,
        mode_file,
    )


def _methods_by_process(starts: Path) -> dict[str, list[str]]:
    by_pid: dict[str, list[str]] = {}
    for line in starts.read_text().splitlines():
        pid, what = line.split(" ", 1)
        by_pid.setdefault(pid, []).append(what)
    return by_pid


async def test_a_server_slower_than_the_probe_is_waited_for_and_serves_its_tools(
    tmp_path: Path, mcp_log: logging.Logger
) -> None:
    release, starts = tmp_path / "release", tmp_path / "starts.log"
    server = StdioServer(
        command=sys.executable,
        args=(str(HERE / "slow_server.py"),),
        env={"RELEASE_FILE": str(release), "STARTS_FILE": str(starts)},
    )
    connector = McpConnector("slow", server, probe_timeout=0.05)
    waiting = anyio.Event()
    watch = _Watch("still waiting for", waiting.set)
    mcp_log.addHandler(watch)
    try:
        with anyio.fail_after(patience(120)):
            async with anyio.create_task_group() as tg:

                async def release_when_waiting() -> None:
                    await waiting.wait()  # toolbridge waited past its probe timeout, and says so
                    release.touch()

                tg.start_soon(release_when_waiting)
                async with hub_with(connector) as hub:
                    assert release.exists()
                    assert [t.name for t in hub.list_tools(LOCAL)] == ["slow.ready"]
                    assert connector._session is not None and connector._session.version == "2026-07-28"
                    result = await hub.call(LOCAL, "slow.ready", {})
                    assert result.value["structuredContent"] == {"result": "ready"}
    finally:
        mcp_log.removeHandler(watch)
    assert len(starts.read_text().splitlines()) == 1  # one process, never restarted
    assert connector.sessions_opened == 1


async def test_a_silent_process_is_replaced_not_asked_in_the_other_era(
    tmp_path: Path, mcp_log: logging.Logger
) -> None:
    server, starts, _ = _raw(tmp_path, "silent-once")
    connector = McpConnector("raw", dataclasses.replace(server, start_timeout=2.0), probe_timeout=0.05)
    hub = hub_with(connector)
    joined = _joined(hub, connector)
    async with hub:
        with anyio.fail_after(patience(120)):
            if not hub.list_tools(LOCAL):  # a loaded machine: the fresh process may be retried
                await joined.wait()
        assert [t.name for t in hub.list_tools(LOCAL)] == ["raw.ping"]
        assert (await hub.call(LOCAL, "raw.ping", {})).value["content"][0]["text"] == "pong"
        assert connector._session is not None and connector._session.version == "2025-11-25"
    processes = _methods_by_process(starts)
    assert len(processes) >= 2
    first, *later = processes.values()
    assert first == ["start silent-once", "server/discover"]  # silent: never asked to initialize
    for methods in processes.values():  # no process was asked in both eras
        assert not ("server/discover" in methods and "initialize" in methods)
    assert "initialize" in later[-1]


async def test_a_server_that_dies_at_start_is_retried_shown_in_health_and_joins_later(
    tmp_path: Path, mcp_log: logging.Logger
) -> None:
    server, starts, mode = _raw(tmp_path, "die")
    connector = McpConnector("raw", server, restart_delays=(0.01,))
    hub = hub_with(connector)
    joined = _joined(hub, connector)
    retried = anyio.Event()
    watch = _Watch("still no upstream (attempt 3)", retried.set)
    mcp_log.addHandler(watch)
    try:
        async with hub:
            assert hub.list_tools(LOCAL) == []  # the hub started anyway
            with anyio.fail_after(patience(120)):
                await retried.wait()
            key = await hub.agents.create("ops", ["*"])
            transport = httpx2.ASGITransport(app=create_app(hub, manage_hub=False))
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.get(
                    "/v1/health/connectors", headers={"Authorization": f"Bearer {key}"}
                )
            (row,) = response.json()["connectors"]
            assert row["connector"] == "raw"
            assert row["upstream"].startswith("down: failed ")
            assert "cannot open its database" in row["upstream"]  # its stderr says why
            mode.write_text("serve")
            with anyio.fail_after(patience(120)):
                await joined.wait()
            assert connector.status == "connected"
            assert (await hub.call(LOCAL, "raw.ping", {})).value["content"][0]["text"] == "pong"
    finally:
        mcp_log.removeHandler(watch)
    assert len(_methods_by_process(starts)) >= 4


async def status_after_three_attempts(connector: McpConnector, mcp_log: logging.Logger) -> str:
    """Run a hub with ``connector`` (a server that exits at once) until its third start; its status then."""
    retried = anyio.Event()
    watch = _Watch("still no upstream (attempt 3)", retried.set)
    mcp_log.addHandler(watch)
    try:
        async with hub_with(connector):
            with anyio.fail_after(patience(120)):
                await retried.wait()
            return str(connector.status)
    finally:
        mcp_log.removeHandler(watch)


LEAKY = """import os, sys
line = "starting with " + os.environ["STATIC_KEY"] + " and " + os.environ["FROM_CONNECTION"]
print(line, flush=True)  # not JSON-RPC: a banner on stdout
print(line, file=sys.stderr, flush=True)
sys.exit(3)
"""


async def test_what_a_stdio_server_writes_is_logged_and_shown_with_its_secrets_masked(
    caplog: pytest.LogCaptureFixture, mcp_log: logging.Logger
) -> None:
    """A server that prints the secrets of its environment (a static one and a connection's) on stdout
    and stderr, then exits: the DEBUG log and the failure shown (health, errors) quote it masked."""
    static, connected = "static-key-0123456789abcdef", "connected-0123456789abcdef"

    async def connection_env() -> dict[str, str]:
        return {"FROM_CONNECTION": connected}

    server = StdioServer(sys.executable, ("-c", LEAKY), env={"STATIC_KEY": static})
    connector = McpConnector(
        "leaky", server, restart_delays=(0.01,), connection_env=connection_env, secrets=[static]
    )
    caplog.set_level(logging.DEBUG, logger="toolbridge.connectors.mcp")
    shown = await status_after_three_attempts(connector, mcp_log)
    assert "starting with [redacted] and [redacted]" in shown, shown
    assert "not JSON" in caplog.text and "starting with [redacted] and [redacted]" in caplog.text
    assert static not in caplog.text + shown and connected not in caplog.text + shown


PEM_LIKE = "\n".join(
    [
        "-----BEGIN PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
        "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
        "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ",
        "-----END PRIVATE KEY-----",
    ]
)
PRINTS_ITS_KEY = """import os, sys
print("loaded key:", file=sys.stderr, flush=True)
print(os.environ["PRIVATE_KEY"], file=sys.stderr, flush=True)
sys.exit(3)
"""


async def test_a_multi_line_secret_written_by_a_stdio_server_is_masked_line_by_line(
    caplog: pytest.LogCaptureFixture, mcp_log: logging.Logger
) -> None:
    """stderr is read a line at a time: a PEM key printed whole reached the log line by line, none of
    which held the whole secret to mask."""
    server = StdioServer(sys.executable, ("-c", PRINTS_ITS_KEY), env={"PRIVATE_KEY": PEM_LIKE})
    connector = McpConnector("pem", server, restart_delays=(0.01,), secrets=[PEM_LIKE])
    caplog.set_level(logging.DEBUG, logger="toolbridge.connectors.mcp")
    shown = await status_after_three_attempts(connector, mcp_log)
    assert "loaded key:" in caplog.text  # what it wrote was logged
    for line in PEM_LIKE.splitlines()[1:-1]:
        assert line not in caplog.text + shown


async def test_a_line_nested_too_deeply_for_json_is_skipped_and_the_call_answered(tmp_path: Path) -> None:
    """json.loads raised RecursionError on a line 5,000 levels deep, past the reader's ValueError handler:
    the reader ended and the call waited for an answer that could no longer be read (found with the
    GraphQL connector's equivalent by an outside fault probe)."""
    server, _starts, _mode = _raw(tmp_path, "deep")
    hub = Hub()
    hub.add_connector(McpConnector("raw", server))
    async with hub:
        with anyio.fail_after(patience(60)):
            first = await hub.call(Principal.local(), "raw.ping", {})
            second = await hub.call(Principal.local(), "raw.ping", {})  # the reader is still there
    assert first.value == second.value == {"content": [{"type": "text", "text": "pong"}]}
