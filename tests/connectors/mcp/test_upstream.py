"""The MCP connector against real upstream servers: discovery, pooled sessions, failures, both eras."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from tests._patience import patience
from toolbridge import Hub, Limits, Principal
from toolbridge.connectors.mcp import McpConnector, StdioServer, ToolRules
from toolbridge.errors import OutcomeUnknown, UpstreamUnavailable
from toolbridge.resilience import Resilience

from .conftest import NodeHttp, changing_server, everything_stdio, hub_with, memory_stdio

pytestmark = pytest.mark.anyio
LOCAL = Principal.local()


async def test_stdio_tools_are_namespaced_and_callable() -> None:
    connector = McpConnector("everything", everything_stdio(), rules=ToolRules(read_only=("get-*",)))
    async with hub_with(connector) as hub:
        names = [t.name for t in hub.list_tools(LOCAL)]
        assert "everything.echo" in names and "everything.get-sum" in names
        assert all(n.startswith("everything.") for n in names)
        result = await hub.call(LOCAL, "everything.echo", {"message": "hello"})
        assert result.value == {"content": [{"type": "text", "text": "Echo: hello"}]}
        # annotations come from toolbridge's config, not from the upstream's hints
        assert hub.get_tool(LOCAL, "everything.get-sum").annotations.read_only
        assert not hub.get_tool(LOCAL, "everything.echo").annotations.read_only


async def test_one_session_serves_many_concurrent_calls() -> None:
    connector = McpConnector("everything", everything_stdio())
    async with hub_with(connector) as hub:
        results: list[object] = []

        async def call(i: int) -> None:
            result = await hub.call(LOCAL, "everything.get-sum", {"a": i, "b": 1})
            results.append(result.value["content"][0]["text"])

        async with anyio.create_task_group() as tg:
            for i in range(25):
                tg.start_soon(call, i)
        for agent in ("alice", "bob"):
            await hub.call(Principal.agent(agent, ["*"]), "everything.echo", {"message": agent})
        assert len(results) == 25
        assert connector.sessions_opened == 1


async def test_process_killed_mid_call_is_a_typed_error_and_the_next_call_restarts_it() -> None:
    connector = McpConnector("everything", everything_stdio())
    async with hub_with(connector) as hub:
        errors: list[Exception] = []

        async def long_call() -> None:
            try:
                await hub.call(
                    LOCAL, "everything.trigger-long-running-operation", {"duration": 20, "steps": 20}
                )
            except (OutcomeUnknown, UpstreamUnavailable) as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            await anyio.sleep(0.5)
            connector._session.channel._process.kill()  # type: ignore[union-attr]
        assert len(errors) == 1
        assert "exited while handling the request" in str(errors[0])
        result = await hub.call(LOCAL, "everything.echo", {"message": "again"})
        assert result.value["content"][0]["text"] == "Echo: again"
        assert connector.sessions_opened == 2


async def test_a_hanging_upstream_hits_the_call_deadline() -> None:
    connector = McpConnector("everything", everything_stdio())
    async with hub_with(connector, call_timeout=patience(1.0)) as hub:
        started = anyio.current_time()
        with pytest.raises(OutcomeUnknown, match="call deadline"):  # not read-only: it may yet take effect
            await hub.call(LOCAL, "everything.trigger-long-running-operation", {"duration": 120, "steps": 3})
        # ended by the deadline, not by the operation (120 s): a wide bound, not a timing claim
        assert anyio.current_time() - started < 60
        # the session survived: the upstream was told to cancel, and the next call works at once
        result = await hub.call(LOCAL, "everything.echo", {"message": "after"})
        assert result.value["content"][0]["text"] == "Echo: after"
        assert connector.sessions_opened == 1


async def test_streamable_http_session_reused_and_reestablished_after_expiry(
    everything_http: NodeHttp,
) -> None:
    connector = McpConnector("remote", everything_http.server)
    async with hub_with(connector) as hub:
        for i in range(5):
            await hub.call(LOCAL, "remote.get-sum", {"a": i, "b": 2})
        assert connector.sessions_opened == 1
        everything_http.restart()  # the new process knows no session: the old id is rejected
        result = await hub.call(LOCAL, "remote.echo", {"message": "still here"})
        assert result.value["content"][0]["text"] == "Echo: still here"
        assert connector.sessions_opened == 2


async def _no_wait(_seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


async def test_streamable_http_server_down_is_unavailable_not_sent(everything_http: NodeHttp) -> None:
    # Every attempt and reconnect still happens, without the production waits between them: the
    # resilience layer's backoff (its sleep replaced) and the restart delays (0.5, 1, 2, 5 … s) took 18
    # of the test's 19 s.
    connector = McpConnector("remote", everything_http.server, restart_delays=(0.05,))
    hub = Hub(limits=Limits(call_timeout=patience(30)), resilience=Resilience(sleep=_no_wait))
    hub.add_connector(connector)
    async with hub:
        everything_http.stop()
        with pytest.raises(UpstreamUnavailable) as caught:
            await hub.call(LOCAL, "remote.echo", {"message": "x"})
        assert "cannot" in str(caught.value)
        everything_http.start()
        result = await hub.call(LOCAL, "remote.echo", {"message": "back"})
        assert result.value["content"][0]["text"] == "Echo: back"


async def test_memory_server_keeps_state_across_calls(tmp_path: Path) -> None:
    connector = McpConnector("memory", memory_stdio(tmp_path))
    async with hub_with(connector) as hub:
        await hub.call(
            LOCAL,
            "memory.create_entities",
            {
                "entities": [
                    {"name": "toolbridge", "entityType": "project", "observations": ["federates MCP"]}
                ]
            },
        )
        found = await hub.call(LOCAL, "memory.search_nodes", {"query": "toolbridge"})
        assert "federates MCP" in found.text
    assert (tmp_path / "memory.jsonl").exists()


async def test_stateless_era_upstream(tmp_path: Path) -> None:
    description = tmp_path / "description.txt"
    description.write_text("Look a key up.")
    connector = McpConnector("sdk", changing_server(description))
    async with hub_with(connector) as hub:
        assert connector._session is not None and connector._session.version == "2026-07-28"
        result = await hub.call(LOCAL, "sdk.lookup", {"key": "k"})
        assert result.value["structuredContent"] == {"result": "value of k"}


async def test_handshake_era_can_be_pinned(tmp_path: Path) -> None:
    description = tmp_path / "description.txt"
    description.write_text("Look a key up.")
    server = changing_server(description)
    from dataclasses import replace

    connector = McpConnector("sdk", replace(server, protocol="2025-11-25"))
    async with hub_with(connector) as hub:
        assert connector._session is not None and connector._session.version == "2025-11-25"
        result = await hub.call(LOCAL, "sdk.lookup", {"key": "k"})
        assert result.value["content"][0]["text"] == "value of k"


async def test_the_upstream_gets_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBRIDGE_SECRET_FOR_TEST", "do-not-leak")
    connector = McpConnector("everything", everything_stdio())
    async with hub_with(connector) as hub:
        result = await hub.call(LOCAL, "everything.get-env", {})
        assert "do-not-leak" not in result.text
        assert "PATH" in result.text


async def test_an_upstream_down_at_start_joins_when_it_comes_up(everything_http: NodeHttp) -> None:
    everything_http.stop()
    hub = Hub()
    joined = anyio.Event()

    def changed() -> None:
        if hub.running:
            hub.refresh_tools("late")
            joined.set()

    connector = McpConnector("late", everything_http.server, restart_delays=(0.05,), on_tools_changed=changed)
    hub.add_connector(connector)
    async with hub:
        assert hub.list_tools(LOCAL) == []  # the hub started anyway
        everything_http.start()
        with anyio.fail_after(patience(20)):  # the connector retries every 50 ms
            await joined.wait()
        result = await hub.call(LOCAL, "late.echo", {"message": "finally"})
        assert result.value["content"][0]["text"] == "Echo: finally"


SPAWNING = Path(__file__).with_name("spawning_server.py")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its parent to reap it is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def test_a_stdio_servers_children_do_not_outlive_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    server = StdioServer(command=sys.executable, args=(str(SPAWNING),), env={"CHILD_PID_FILE": str(pid_file)})
    connector = McpConnector("spawning", server)
    async with hub_with(connector) as hub:
        child = int((await hub.call(LOCAL, "spawning.helper", {})).value["content"][0]["text"])
        assert _running(child)
    with anyio.fail_after(patience(10)):
        while _running(child):  # noqa: ASYNC110 - bounded poll: the group was signalled on close
            await anyio.sleep(0.02)
