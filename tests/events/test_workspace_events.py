"""Workspace changes are recorded in the event log in the workspace's own transaction, and subscriptions
route them like any event."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge import Hub, Principal
from toolbridge.settings import parse_settings

pytestmark = pytest.mark.anyio

CONFIG = """
connectors:
  workspace:
    kind: workspace
    members: {{assistant: editor}}
    blob_path: "{blobs}"
agents:
  assistant: {{scopes: ["workspace.*", "events.*"]}}
subscriptions:
  files:
    source: workspace
    type: workspace.file.*
    principals: [assistant]
"""


async def test_a_write_is_an_event_the_subscriber_reads(database_url: str, tmp_path: Path) -> None:
    settings = parse_settings(CONFIG.format(blobs=tmp_path / "blobs"), source=tmp_path / "toolbridge.yaml")
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"database": database_url})}
    )
    hub = Hub.from_settings(settings)
    assistant = Principal.agent("assistant", ["workspace.*", "events.*"])
    async with hub:
        start = await hub.call(assistant, "events.poll", {"subscription": "files"})
        await hub.call(assistant, "workspace.write", {"path": "/notes/a.md", "content": "# hi"})
        await hub.call(assistant, "workspace.lock", {"path": "/notes/a.md"})  # lease.acquired: not matched
        page = await hub.call(
            assistant,
            "events.wait",
            {"subscription": "files", "cursor": start.value["cursor"], "max_wait": 10},
        )
        changes = await hub.call(assistant, "workspace.changes", {})
    (event,) = page.value["events"]
    assert (event["source"], event["type"], event["subject"]) == (
        "workspace",
        "workspace.file.created",
        "/notes/a.md",
    )
    assert event["payload"]["principal"] == "agent:assistant"
    feed = [(c["kind"], c["id"]) for c in changes.value["changes"] if c["kind"] == "file.created"]
    assert feed == [("file.created", event["payload"]["seq"])]  # the same change, one feed
