"""Files, folders, versions, trash, metadata, search, conditional writes, isolation (SQLite and Postgres)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    QuotaExceeded,
)
from toolbridge.workspace import Role, Workspaces, normalize_path

from .conftest import ALICE, BOB, MALLORY, VIEWER

pytestmark = pytest.mark.anyio


async def test_write_read_stat_and_versions(ws: Workspaces) -> None:
    first = await ws.write(ALICE, "team", "/reports/q3.csv", b"a,b\n1,2\n", content_type="text/csv")
    assert (first.version, first.size, first.kind) == (1, 8, "file")
    second = await ws.write(BOB, "team", "reports//q3.csv", b"a,b\n3,4\n")
    assert second.version == 2 and second.etag != first.etag
    entry, data = await ws.read(VIEWER, "team", "/reports/q3.csv")
    assert data == b"a,b\n3,4\n" and entry.content_type == "text/csv" and entry.updated_by == BOB.id
    versions = await ws.versions(ALICE, "team", "/reports/q3.csv")
    assert [v.version for v in versions] == [2, 1]
    _, old = await ws.read(ALICE, "team", "/reports/q3.csv", version=1)
    assert old == b"a,b\n1,2\n"
    restored = await ws.restore_version(ALICE, "team", "/reports/q3.csv", 1)
    assert restored.version == 3
    assert (await ws.read(ALICE, "team", "/reports/q3.csv"))[1] == b"a,b\n1,2\n"
    _, part = await ws.read(ALICE, "team", "/reports/q3.csv", start=2, end=5)
    assert part == b"b\n1"


async def test_list_folders_and_mkdir(ws: Workspaces) -> None:
    await ws.write(ALICE, "team", "/a/one.txt", b"1")
    await ws.write(ALICE, "team", "/a/b/two.txt", b"2")
    await ws.mkdir(ALICE, "team", "/empty")
    root = await ws.list_folder(ALICE, "team", "/")
    assert [(e.path, e.kind) for e in root] == [("/a", "folder"), ("/empty", "folder")]
    inside = await ws.list_folder(ALICE, "team", "/a")
    assert [(e.path, e.kind) for e in inside] == [("/a/b", "folder"), ("/a/one.txt", "file")]
    assert (await ws.stat(ALICE, "team", "/a")).kind == "folder"
    with pytest.raises(NotFound):
        await ws.list_folder(ALICE, "team", "/nope")
    with pytest.raises(Conflict):
        await ws.write(ALICE, "team", "/a/one.txt/x", b"below a file")
    with pytest.raises(Conflict):
        await ws.write(ALICE, "team", "/a", b"on a folder")


async def test_move_copy_delete_restore(ws: Workspaces) -> None:
    await ws.write(ALICE, "team", "/docs/a.md", b"A")
    await ws.write(ALICE, "team", "/docs/sub/b.md", b"B")
    moved = await ws.move(ALICE, "team", "/docs", "/archive")
    assert moved.kind == "folder"
    assert (await ws.read(ALICE, "team", "/archive/sub/b.md"))[1] == b"B"
    with pytest.raises(NotFound):
        await ws.stat(ALICE, "team", "/docs/a.md")
    copied = await ws.move(ALICE, "team", "/archive/a.md", "/copy.md", copy=True)
    assert copied.version == 1
    assert (await ws.read(ALICE, "team", "/archive/a.md"))[1] == b"A"
    with pytest.raises(Conflict):
        await ws.move(ALICE, "team", "/archive/a.md", "/copy.md")
    gone = await ws.delete(ALICE, "team", "/archive")
    assert gone.trashed
    with pytest.raises(NotFound):
        await ws.read(ALICE, "team", "/archive/a.md")
    trash = await ws.list_folder(ALICE, "team", "/", trashed=True)
    assert {e.path for e in trash} == {"/archive/a.md", "/archive/sub/b.md"}
    await ws.restore(ALICE, "team", "/archive")
    assert (await ws.read(ALICE, "team", "/archive/sub/b.md"))[1] == b"B"
    assert (await ws.versions(ALICE, "team", "/archive/a.md"))[0].version == 1


async def test_conditional_writes_fail_with_412(ws: Workspaces) -> None:
    with pytest.raises(PreconditionFailed):
        await ws.write(ALICE, "team", "/c.txt", b"x", expected_version=1)
    created = await ws.write(ALICE, "team", "/c.txt", b"x", expected_version=0)
    with pytest.raises(PreconditionFailed) as info:
        await ws.write(BOB, "team", "/c.txt", b"y", expected_version=0)
    assert info.value.status == 412 and info.value.current["version"] == 1
    await ws.write(BOB, "team", "/c.txt", b"y", if_match=created.etag)
    with pytest.raises(PreconditionFailed):
        await ws.write(
            ALICE, "team", "/c.txt", b"z", if_match=created.etag
        )  # stale ETag: lost update refused
    assert (await ws.read(ALICE, "team", "/c.txt"))[1] == b"y"


async def test_metadata_and_search(ws: Workspaces) -> None:
    await ws.write(ALICE, "team", "/r/Q3-report.pdf", b"%PDF", metadata={"quarter": "q3", "team": "sales"})
    await ws.write(ALICE, "team", "/r/q4-report.pdf", b"%PDF", metadata={"quarter": "q4"})
    await ws.set_metadata(ALICE, "team", "/r/q4-report.pdf", {"team": "sales"})
    hits = await ws.search(ALICE, "team", name="REPORT")
    assert [e.path for e in hits] == ["/r/Q3-report.pdf", "/r/q4-report.pdf"]
    hits = await ws.search(ALICE, "team", metadata={"team": "sales", "quarter": "q4"})
    assert [e.path for e in hits] == ["/r/q4-report.pdf"]
    assert await ws.search(ALICE, "team", name="r/") == []  # names, not folders


async def test_roles_and_tenant_isolation(ws: Workspaces) -> None:
    await ws.write(MALLORY, "other", "/secret.txt", b"s")
    with pytest.raises(PermissionDenied):
        await ws.write(VIEWER, "team", "/x", b"viewers read only")
    with pytest.raises(NotFound) as theirs:
        await ws.read(ALICE, "other", "/secret.txt")
    with pytest.raises(NotFound) as missing:
        await ws.read(ALICE, "no-such-workspace", "/secret.txt")
    assert theirs.value.message.replace("other", "W") == missing.value.message.replace(
        "no-such-workspace", "W"
    )
    assert theirs.value.hint == missing.value.hint
    assert [w.id for w in await ws.workspaces(ALICE)] == ["team"]
    await ws.set_member(MALLORY, "other", ALICE.id, Role.VIEWER)
    assert (await ws.read(ALICE, "other", "/secret.txt"))[1] == b"s"


@pytest.mark.parametrize("raw", ["../../etc/passwd", "/a/../../b", "a\x00b", "/a\\b", "", "/", "x" * 300])
def test_paths_that_escape_or_are_malformed_are_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        normalize_path(raw)


def test_unicode_twins_share_one_path() -> None:
    assert normalize_path("/caf\u00e9.txt") == normalize_path("/cafe\u0301.txt")
    assert normalize_path("./a//b/./c/") == "/a/b/c"


async def test_quota_names_the_limit(ws: Workspaces) -> None:
    await ws.ensure("small", quota_bytes=10, members={ALICE.id: Role.OWNER})
    await ws.write(ALICE, "small", "/a", b"12345")
    with pytest.raises(QuotaExceeded) as info:
        await ws.write(ALICE, "small", "/b", b"123456")
    assert info.value.limit_name == "workspace.quota_bytes" and "quota_bytes" in (info.value.hint or "")
    assert (await ws.info(ALICE, "small")).used_bytes == 5


async def test_credits_per_agent(ws: Workspaces) -> None:
    ws.credits_per_agent = 3
    await ws.write(ALICE, "team", "/a", b"1")
    await ws.stat(ALICE, "team", "/a")
    await ws.stat(ALICE, "team", "/a")
    with pytest.raises(QuotaExceeded) as info:
        await ws.stat(ALICE, "team", "/a")
    assert info.value.limit_name == "workspace.credits_per_agent"
    await ws.stat(BOB, "team", "/a")  # another agent's budget is its own


async def test_local_blobs_are_content_addressed_and_atomic(tmp_path: Path) -> None:
    from toolbridge.workspace import LocalBlobStore

    store = LocalBlobStore(tmp_path / "b")
    one = await store.put_bytes(b"same bytes")
    two = await store.put_bytes(b"same bytes")
    assert one == two and store.path_of(one.sha256).read_bytes() == b"same bytes"
    assert store.path_of(one.sha256).parent.parent.name == one.sha256[:2]
    assert list(store.scratch.iterdir()) == []  # no temporary file left behind
    assert await store.read(one.sha256, 5) == b"bytes"
