"""The admin UI's workspace browser: the operator's workspaces, a folder, a file downloaded as an
attachment (role and scope checked, audited)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.surfaces.admin._kit import HOSTILE, make_hub, served, sign_in
from toolbridge import Principal
from toolbridge.workspace import LocalBlobStore, Role, WorkspaceConnector

pytestmark = pytest.mark.anyio


async def test_browse_a_folder_and_download_a_file_as_an_attachment(tmp_path: Path) -> None:
    hub = make_hub()
    hub.add_connector(
        WorkspaceConnector(
            database=hub.database,
            blobs=LocalBlobStore(tmp_path / "blobs", fsync=False),
            members={"agent:ops": Role.EDITOR},
            signing_secret=b"k" * 32,
            public_url="http://toolbridge.test",
        )
    )
    async with served(hub) as admin:
        ops = Principal.agent("ops", ["*"])
        ws = {"id": "shared"}  # the connector's workspace
        await hub.call(
            ops, "workspace.write", {"workspace": ws["id"], "path": "/docs/page.html", "content": HOSTILE}
        )
        await sign_in(admin.http, admin.operator_key)

        listed = await admin.http.get("/admin/workspaces")
        assert listed.status_code == 200 and f'href="/admin/workspaces/{ws["id"]}"' in listed.text
        root = await admin.http.get(f"/admin/workspaces/{ws['id']}")
        assert "/docs/" in root.text
        docs = await admin.http.get(f"/admin/workspaces/{ws['id']}", params={"path": "/docs"})
        link = re.search(
            r'<a href="(/admin/workspaces/[^"]+/download\?[^"]+)">/docs/page.html</a>', docs.text
        )
        assert link, docs.text[-1500:]
        file = await admin.http.get(link.group(1).replace("&amp;", "&"))
        assert file.status_code == 200 and file.text == HOSTILE
        assert file.headers["content-type"] == "application/octet-stream"
        assert file.headers["content-disposition"] == "attachment; filename*=UTF-8''page.html"
        assert "sandbox" in file.headers["content-security-policy"]
        missing = await admin.http.get(f"/admin/workspaces/{ws['id']}/download", params={"path": "/nope"})
        assert missing.status_code == 404
        await hub.audit.flush()
        downloads = [r.entry for r in await hub.audit.tail(50) if r.entry.tool == "workspace.download"]
        assert [(r.principal, r.outcome) for r in downloads] == [("agent:ops", "ok"), ("agent:ops", "error")]


async def test_a_folder_shows_when_each_file_changed_as_a_utc_time_not_seconds_since_1970(
    tmp_path: Path,
) -> None:
    hub = make_hub()
    hub.add_connector(
        WorkspaceConnector(
            database=hub.database,
            blobs=LocalBlobStore(tmp_path / "blobs", fsync=False),
            members={"agent:ops": Role.EDITOR},
        )
    )
    async with served(hub) as admin:
        ops = Principal.agent("ops", ["*"])
        await hub.call(ops, "workspace.write", {"workspace": "shared", "path": "/a.txt", "content": "a"})
        await sign_in(admin.http, admin.operator_key)
        root = await admin.http.get("/admin/workspaces/shared")
        cells = re.findall(r"<td>agent:ops</td><td>([^<]*)</td>", root.text)
        assert len(cells) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells[0]), cells
