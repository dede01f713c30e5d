"""Issue 19's router: a capability with two providers fails over when the first is down, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.router.conftest import bodies, hub_from, rows_of, write_config
from toolbridge import Principal
from toolbridge.errors import NoProviderAvailable, ToolNotFound, UpstreamStatusError
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
BOT = Principal.agent("bot", ["capability.*"])
FILE = {"path": "a/b.txt", "content": "hello"}


async def test_a_503_until_the_breaker_opens_fails_over_to_the_second_provider(
    tmp_path: Path, database_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(*[Reply(503)] * 10)  # down: answers 503 for as long as it is asked
    hub = hub_from(write_config(tmp_path, database_url, primary, backup))
    async with hub:
        first = await hub.call(BOT, "capability.store_file", FILE, request_id="call-1")
        assert first.value == {"ok": True}
        assert len(primary.requests) == 3, "the primary's own retries ran first"
        assert hub.resilience.state("primary").breaker.state.value == "open"
        second = await hub.call(BOT, "capability.store_file", FILE, request_id="call-2")
        assert second.value == {"ok": True}
        assert len(primary.requests) == 3, "an open breaker is skipped without a request"
        one, two = await rows_of(hub, "call-1"), await rows_of(hub, "call-2")
    assert bodies(backup) == [{"name": "a/b.txt", "data": "hello", "folder": "fallback"}] * 2
    assert backup.effect_count == 2 and primary.effect_count == 0
    assert [(r.entry.tool, r.entry.outcome, r.entry.error_code) for r in one] == [
        ("primary.put_object", "error", "upstream_status"),
        ("backup.upload_file", "ok", None),
        ("capability.store_file", "ok", None),
    ]
    assert [(r.entry.tool, r.entry.outcome, r.entry.error_code) for r in two] == [
        ("primary.put_object", "error", "circuit_open"),
        ("backup.upload_file", "ok", None),
        ("capability.store_file", "ok", None),
    ]
    assert {r.entry.principal for r in one + two} == {"agent:bot"}


async def test_a_422_from_the_first_provider_is_returned_not_failed_over(
    tmp_path: Path, database_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(Reply(422, body={"error": "key too long"}))
    hub = hub_from(write_config(tmp_path, database_url, primary, backup))
    async with hub:
        with pytest.raises(UpstreamStatusError) as caught:
            await hub.call(BOT, "capability.store_file", FILE, request_id="call-422")
        rows = await rows_of(hub, "call-422")
    assert caught.value.upstream_status == 422 and "key too long" in (caught.value.body or "")
    assert len(primary.requests) == 1 and backup.requests == []
    assert bodies(primary) == [{"key": "a/b.txt", "body": "hello"}]
    assert [(r.entry.tool, r.entry.outcome, r.entry.error_code) for r in rows] == [
        ("primary.put_object", "error", "upstream_status"),
        ("capability.store_file", "error", "upstream_status"),
    ]


async def test_when_every_provider_is_down_the_error_names_each(
    tmp_path: Path, database_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    primary.then(*[Reply(503)] * 3)
    backup.then(Reply(429, headers={"Retry-After": "7"}))
    hub = hub_from(write_config(tmp_path, database_url, primary, backup))
    async with hub:
        with pytest.raises(NoProviderAvailable) as caught:
            await hub.call(BOT, "capability.store_file", FILE)
    assert caught.value.skipped == [
        {"tool": "primary.put_object", "code": "upstream_status"},
        {"tool": "backup.upload_file", "code": "upstream_status"},
    ]
    assert caught.value.status == 503 and caught.value.tool == "capability.store_file"


async def test_a_connection_that_needs_reauthorization_is_skipped(
    tmp_path: Path, database_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    from toolbridge.credentials import Material, Secret

    primary, backup = upstreams
    extra = "    connections: {scheme: bearer}"
    hub = hub_from(write_config(tmp_path, database_url, primary, backup, primary_extra=extra))
    async with hub:
        assert hub.credentials is not None
        conn = await hub.credentials.add("primary", "default", Material(secret=Secret("tok-1")))
        await hub.credentials.store.set_state(conn.id, "reauth_required", error="invalid_grant")
        result = await hub.call(BOT, "capability.store_file", FILE, request_id="call-reauth")
        rows = await rows_of(hub, "call-reauth")
    assert result.value == {"ok": True}
    assert primary.requests == [] and len(backup.requests) == 1
    assert ("primary.put_object", "error", "reconnect_required") in [
        (r.entry.tool, r.entry.outcome, r.entry.error_code) for r in rows
    ]


async def test_the_agent_needs_the_capability_scope_not_the_providers(
    tmp_path: Path, sqlite_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    primary, backup = upstreams
    hub = hub_from(write_config(tmp_path, sqlite_url, primary, backup))
    async with hub:
        assert (await hub.call(BOT, "capability.store_file", FILE)).value == {"ok": True}
        reader = Principal.agent("reader", ["capability.*:read", "primary.*"])
        with pytest.raises(ToolNotFound):  # a write: out of a read scope, so invisible
            await hub.call(reader, "capability.store_file", FILE)
        assert not hub.get_tool(BOT, "capability.store_file").annotations.read_only
        with pytest.raises(ToolNotFound):
            await hub.call(BOT, "primary.put_object", {"key": "k", "body": "b"})
    assert len(primary.requests) == 1 and backup.requests == []
