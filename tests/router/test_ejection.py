"""A provider whose connection is ejected (RELIABILITY.md R12) is skipped like one whose breaker is open:
its call failed fast, nothing was done, so the router goes on to the next provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.router.conftest import BACKUP, CAPABILITY, PRIMARY, hub_from, rows_of
from toolbridge import Principal
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
BOT = Principal.agent("bot", ["capability.*"])
FILE = {"path": "a/b.txt", "content": "hello"}


def write_config(folder: Path, database_url: str, primary: Upstream, backup: Upstream) -> Path:
    """The primary serves each agent with its own connection; two failures in a row eject one."""
    (folder / "primary.json").write_text(json.dumps(PRIMARY))
    (folder / "backup.json").write_text(json.dumps(BACKUP))
    path = folder / "toolbridge.yaml"
    path.write_text(f"""
server: {{database: "{database_url}"}}
connectors:
  primary:
    kind: openapi
    spec: primary.json
    base_url: {primary.url}
    connections: {{scheme: bearer, policy: per_user}}
    resilience:
      retry: {{max_attempts: 1}}
      outlier: {{consecutive_failures: 2, base_ejection_seconds: 600}}
  backup:
    kind: openapi
    spec: backup.json
    base_url: {backup.url}
    resilience:
      retry: {{max_attempts: 1}}
agents:
  bot: {{scopes: ['capability.*']}}
{CAPABILITY.replace("CHOICE", "ordered")}
""")
    return path


async def test_a_provider_whose_connection_is_ejected_is_skipped_without_a_request(
    tmp_path: Path, sqlite_url: str, upstreams: tuple[Upstream, Upstream]
) -> None:
    from toolbridge.credentials import Material, Secret

    primary, backup = upstreams
    primary.then(*[Reply(503)] * 10)  # the bot's account there is broken
    hub = hub_from(write_config(tmp_path, sqlite_url, primary, backup))
    async with hub:
        assert hub.credentials is not None
        await hub.credentials.add("primary", "main", Material(secret=Secret("bot-token")), owner="agent:bot")
        for n in range(4):
            assert (await hub.call(BOT, "capability.store_file", FILE, request_id=f"call-{n}")).value == {
                "ok": True
            }
        last = await rows_of(hub, "call-3")
        assert hub.resilience.breaker_state("primary") == "closed"
    assert len(primary.requests) == 2, "ejected after two failures: not called again"
    assert len(backup.requests) == 4
    assert [(r.entry.tool, r.entry.outcome, r.entry.error_code) for r in last if r.entry.tool[0] != "("] == [
        ("primary.put_object", "error", "circuit_open"),
        ("backup.upload_file", "ok", None),
        ("capability.store_file", "ok", None),
    ]
