"""The workspace through Hub.call, as an agent uses it: tools, annotations, next hints, inline vs URL."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from toolbridge import Hub, Principal
from toolbridge.errors import InvalidArguments, Locked, NotFound, PreconditionFailed, ToolNotFound
from toolbridge.workspace import LocalBlobStore, Role, WorkspaceConnector

pytestmark = pytest.mark.anyio

AGENT = Principal.agent("assistant", ["workspace.*"])
READER = Principal.agent("reader", ["workspace.*:read"])
OTHER = Principal.agent("other", ["workspace.*"])


@pytest.fixture
async def hub(database_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    hub = Hub(database=database_url)
    connector = WorkspaceConnector(
        database=hub.database,
        blobs=LocalBlobStore(tmp_path / "blobs", fsync=False),
        members={AGENT.id: Role.EDITOR, READER.id: Role.VIEWER, OTHER.id: Role.EDITOR},
        inline_bytes=1000,
        signing_secret=b"s" * 32,
    )
    hub.add_connector(connector)
    async with hub:
        yield hub


def test_tools_and_annotations() -> None:
    from toolbridge.storage import Database
    from toolbridge.workspace import MemoryBlobStore

    connector = WorkspaceConnector(database=Database(), blobs=MemoryBlobStore())
    tools = {t.operation: t for t in connector.tools()}
    assert set(tools) == {
        "list", "read", "write", "stat", "move", "copy", "delete", "restore", "versions", "lock",
        "unlock", "upload_url", "import_url", "search", "changes",
    }  # fmt: skip
    read_only = {op for op, t in tools.items() if t.annotations.read_only}
    assert read_only == {"list", "read", "stat", "versions", "search", "changes"}
    assert {op for op, t in tools.items() if t.annotations.destructive} == {"delete"}
    assert all(t.input_schema["additionalProperties"] is False for t in tools.values())


async def test_write_read_list_with_next_hints(hub: Hub) -> None:
    written = (await hub.call(AGENT, "workspace.write", {"path": "/notes/a.md", "content": "# hi"})).value
    assert written["version"] == 1 and written["next"]
    read = (await hub.call(READER, "workspace.read", {"path": "/notes/a.md"})).value
    assert (read["encoding"], read["content"]) == ("text", "# hi")
    listed = (await hub.call(READER, "workspace.list", {"path": "/notes"})).value
    assert [e["path"] for e in listed["entries"]] == ["/notes/a.md"] and listed["next"]
    with pytest.raises(ToolNotFound):  # a read-only agent does not see the writing tools
        await hub.call(READER, "workspace.write", {"path": "/x", "content": "no"})


async def test_binary_small_is_base64_large_is_a_signed_url(hub: Hub) -> None:
    small = bytes(range(200))
    await hub.call(
        AGENT,
        "workspace.write",
        {"path": "/b.bin", "content": base64.b64encode(small).decode(), "encoding": "base64"},
    )
    got = (await hub.call(AGENT, "workspace.read", {"path": "/b.bin"})).value
    assert got["encoding"] == "base64" and base64.b64decode(got["content"]) == small
    big = "x" * 5000
    await hub.call(AGENT, "workspace.write", {"path": "/big.txt", "content": big})
    got = (await hub.call(AGENT, "workspace.read", {"path": "/big.txt"})).value
    assert got["encoding"] == "url" and "content" not in got
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(got["url"]).query))
    assert set(query) == {"path", "by", "v", "exp", "sig"}
    part = (await hub.call(AGENT, "workspace.read", {"path": "/big.txt", "offset": 10, "length": 20})).value
    assert part["content"] == "x" * 20


async def test_lock_write_unlock_and_changes(hub: Hub) -> None:
    lease = (await hub.call(AGENT, "workspace.lock", {"path": "/l.txt", "ttl": 60})).value
    assert lease["fence"] >= 1 and lease["lease"].startswith("lt_")
    with pytest.raises(Locked) as info:
        await hub.call(OTHER, "workspace.write", {"path": "/l.txt", "content": "mine!"})
    assert info.value.holder == AGENT.id
    await hub.call(AGENT, "workspace.write", {"path": "/l.txt", "content": "ok", "lease": lease["lease"]})
    extended = (await hub.call(AGENT, "workspace.lock", {"path": "/l.txt", "lease": lease["lease"]})).value
    assert extended["fence"] == lease["fence"]
    await hub.call(AGENT, "workspace.unlock", {"path": "/l.txt", "lease": lease["lease"]})
    feed = (await hub.call(READER, "workspace.changes", {"cursor": 0})).value
    assert [c["kind"] for c in feed["changes"]] == ["lease.acquired", "file.created", "lease.released"]
    again = (await hub.call(READER, "workspace.changes", {"cursor": feed["cursor"]})).value
    assert again["changes"] == [] and again["cursor"] == feed["cursor"]


@pytest.mark.parametrize("wait", [0, 5])
async def test_a_cursor_past_the_newest_change_is_refused(hub: Hub, wait: int) -> None:
    """A cursor from another list (an event log's 5000) was answered as it stood, with 'next: cursor=5000',
    on every later read: the changes below it were never seen. Refused before any wait."""
    await hub.call(AGENT, "workspace.write", {"path": "/c.txt", "content": "x"})
    newest = (await hub.call(READER, "workspace.changes", {"cursor": 0})).value["cursor"]
    with pytest.raises(InvalidArguments) as info:
        await hub.call(READER, "workspace.changes", {"cursor": newest + 5000, "wait": wait})
    assert info.value.message == (
        f"cursor {newest + 5000} is past the newest change ({newest}): not a cursor this feed gave"
    )
    assert info.value.errors == [{"field": "cursor", "error": info.value.message}]


async def test_conditional_write_and_versions_and_restore(hub: Hub) -> None:
    first = (await hub.call(AGENT, "workspace.write", {"path": "/c.txt", "content": "1"})).value
    await hub.call(OTHER, "workspace.write", {"path": "/c.txt", "content": "2", "if_match": first["etag"]})
    with pytest.raises(PreconditionFailed):
        await hub.call(
            AGENT, "workspace.write", {"path": "/c.txt", "content": "3", "if_match": first["etag"]}
        )
    versions = (await hub.call(AGENT, "workspace.versions", {"path": "/c.txt"})).value["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    await hub.call(AGENT, "workspace.restore", {"path": "/c.txt", "version": 1})
    assert (await hub.call(AGENT, "workspace.read", {"path": "/c.txt"})).value["content"] == "1"
    deleted = (await hub.call(AGENT, "workspace.delete", {"path": "/c.txt"})).value
    with pytest.raises(NotFound):
        await hub.call(AGENT, "workspace.stat", {"path": "/c.txt"})
    await hub.call(AGENT, "workspace.restore", {"path": "/c.txt", "trash_id": deleted["trash_id"]})
    assert (await hub.call(AGENT, "workspace.stat", {"path": "/c.txt"})).value["version"] == 3


async def test_other_tenants_workspace_is_404(hub: Hub) -> None:
    with pytest.raises(NotFound) as info:
        await hub.call(AGENT, "workspace.list", {"workspace": "someone-elses"})
    assert "someone-elses" in info.value.message
    outsider = Principal.agent("outsider", ["workspace.*"])
    with pytest.raises(NotFound):
        await hub.call(outsider, "workspace.list", {})
    with pytest.raises(NotFound):
        await hub.call(outsider, "workspace.upload_url", {"path": "/x"})


async def test_search_copy_move(hub: Hub) -> None:
    await hub.call(
        AGENT, "workspace.write", {"path": "/r/report.csv", "content": "a", "metadata": {"k": "v"}}
    )
    await hub.call(AGENT, "workspace.copy", {"source": "/r/report.csv", "target": "/r/report-copy.csv"})
    await hub.call(AGENT, "workspace.move", {"source": "/r", "target": "/reports"})
    found = (await hub.call(AGENT, "workspace.search", {"name": "report", "metadata": {"k": "v"}})).value
    assert [e["path"] for e in found["results"]] == ["/reports/report-copy.csv", "/reports/report.csv"]
