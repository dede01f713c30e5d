"""/v1/workspaces over ASGI: files, Range downloads, signed URLs, the tus protocol, the change feed."""

from __future__ import annotations

import base64
import hashlib

import anyio
import pytest

from tests._patience import patience
from toolbridge import Principal
from toolbridge.errors import NotFound
from toolbridge.workspace import Role

from .conftest import Env

pytestmark = pytest.mark.anyio
B64_PATH = base64.b64encode(b"/up/meta.bin").decode()
TUS = {"Tus-Resumable": "1.0.0"}


async def test_put_get_range_and_list(env: Env) -> None:
    c, auth = env.client, env.auth
    data = bytes(range(256)) * 4
    put = await c.put(
        "/v1/workspaces/shared/content", params={"path": "/d/x.bin"}, content=data, headers=auth
    )
    assert put.status_code == 201, put.text
    got = await c.get("/v1/workspaces/shared/content", params={"path": "/d/x.bin"}, headers=auth)
    assert got.content == data and got.headers["accept-ranges"] == "bytes"
    part = await c.get(
        "/v1/workspaces/shared/content", params={"path": "/d/x.bin"}, headers={**auth, "Range": "bytes=10-19"}
    )
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = await c.get(
        "/v1/workspaces/shared/content", params={"path": "/d/x.bin"}, headers={**auth, "Range": "bytes=-5"}
    )
    assert tail.content == data[-5:]
    bad = await c.get(
        "/v1/workspaces/shared/content", params={"path": "/d/x.bin"}, headers={**auth, "Range": "bytes=5000-"}
    )
    assert bad.status_code == 416
    listing = (await c.get("/v1/workspaces/shared/files", params={"path": "/d"}, headers=auth)).json()
    assert [e["path"] for e in listing["entries"]] == ["/d/x.bin"]
    stale = await c.put(
        "/v1/workspaces/shared/content",
        params={"path": "/d/x.bin"},
        content=b"new",
        headers={**auth, "If-Match": '"nope-1"'},
    )
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"


async def test_a_file_is_served_with_its_type_but_never_runs_as_a_page_of_this_origin(env: Env) -> None:
    """An agent's HTML (or SVG) came back as ``text/html`` with nothing else: opened in a browser (a signed
    download URL is made to be), its script ran as a page of the server's own origin."""
    c, auth = env.client, env.auth
    page = b"<script>alert(document.domain)</script>"
    headers = {**auth, "Content-Type": "text/html"}
    await c.put("/v1/workspaces/shared/content", params={"path": "/x.html"}, content=page, headers=headers)
    got = await c.get("/v1/workspaces/shared/content", params={"path": "/x.html"}, headers=auth)
    assert got.content == page and got.headers["content-type"].startswith("text/html")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-security-policy"] == "sandbox; default-src 'none'"


async def test_other_tenant_and_missing_workspace_look_the_same(env: Env) -> None:
    c = env.client
    await c.put("/v1/workspaces/shared/content", params={"path": "/s"}, content=b"s", headers=env.auth)
    theirs = await c.get("/v1/workspaces/shared/content", params={"path": "/s"}, headers=env.other)
    missing = await c.get("/v1/workspaces/zzzzzz/content", params={"path": "/s"}, headers=env.other)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace("shared", "W") == missing.json()["detail"].replace("zzzzzz", "W")
    assert (await c.get("/v1/workspaces/", headers=env.other)).json() == {"workspaces": []}
    assert (await c.get("/v1/workspaces/shared/files", params={"path": "/"})).status_code == 401


async def test_signed_download_url_from_the_read_tool(env: Env) -> None:
    agent = Principal.agent("assistant", ["workspace.*"])
    await env.hub.call(agent, "workspace.write", {"path": "/big.txt", "content": "y" * 500})
    result = (await env.hub.call(agent, "workspace.read", {"path": "/big.txt"})).value
    assert result["encoding"] == "url"
    got = await env.client.get(result["url"])
    assert got.status_code == 200 and got.content == b"y" * 500
    forged = result["url"].replace("path=%2Fbig.txt", "path=%2Fother.txt")
    assert (await env.client.get(forged)).status_code == 401


async def test_tus_protocol_resume_checksum_and_terminate(env: Env) -> None:
    c, auth = env.client, env.auth
    options = await c.options("/v1/workspaces/shared/uploads")
    assert (
        "checksum" in options.headers["tus-extension"]
        and options.headers["tus-checksum-algorithm"] == "sha256"
    )
    data = b"0123456789" * 1000
    meta = "path " + base64.b64encode(b"/up/file.bin").decode()
    created = await c.post(
        "/v1/workspaces/shared/uploads",
        headers={**auth, **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
    )
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
    first = await c.patch(url, content=data[:4000], headers={**patch, "Upload-Offset": "0"})
    assert first.status_code == 204 and first.headers["upload-offset"] == "4000"
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    refused = await c.patch(
        url,
        content=data[4000:6000],
        headers={**patch, "Upload-Offset": "4000", "Upload-Checksum": f"sha256 {wrong}"},
    )
    assert refused.status_code == 460
    assert (await c.head(url, headers=TUS)).headers["upload-offset"] == "4000"  # the bad chunk was dropped
    conflict = await c.patch(url, content=data[5000:], headers={**patch, "Upload-Offset": "5000"})
    assert conflict.status_code == 409
    good = base64.b64encode(hashlib.sha256(data[4000:]).digest()).decode()
    done = await c.patch(
        url,
        content=data[4000:],
        headers={**patch, "Upload-Offset": "4000", "Upload-Checksum": f"sha256 {good}"},
    )
    assert done.status_code == 204 and done.headers["x-version"] == "1"
    got = await c.get("/v1/workspaces/shared/content", params={"path": "/up/file.bin"}, headers=auth)
    assert got.content == data
    assert (await c.head(url, headers=TUS)).status_code == 404  # finished uploads are gone
    second = await c.post(
        "/v1/workspaces/shared/uploads",
        headers={**auth, **TUS, "Upload-Length": "10", "Upload-Metadata": meta},
    )
    gone = await c.delete(second.headers["location"], headers=TUS)
    assert gone.status_code == 204
    assert (await c.head(second.headers["location"], headers=TUS)).status_code == 404


async def test_a_tus_upload_is_resumed_by_its_url_or_its_owners_key_not_another_agents(env: Env) -> None:
    """The URL is a capability; a request that also brought another agent's key went through as the
    upload's owner, and the audit row named the owner (found by an outside probe)."""
    c = env.client
    meta = "path " + base64.b64encode(b"/up/theirs.bin").decode()
    created = await c.post(
        "/v1/workspaces/shared/uploads",
        headers={**env.auth, **TUS, "Upload-Length": "10", "Upload-Metadata": meta},
    )
    url = created.headers["location"]
    patch = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    foreign = await c.patch(url, content=b"01234", headers={**patch, **env.other})
    assert foreign.status_code == 403 and "not to agent:" in foreign.json()["detail"]
    assert (await c.head(url, headers={**TUS, **env.other})).status_code == 403
    assert (await c.head(url, headers=TUS)).headers["upload-offset"] == "0"  # nothing was written
    own = await c.patch(url, content=b"01234", headers={**patch, **env.auth})
    assert own.status_code == 204 and own.headers["upload-offset"] == "5"


async def test_tus_create_is_refused_when_someone_else_holds_the_lease(env: Env) -> None:
    holder = Principal.agent("holder", ["workspace.*"])
    await env.connector.service.set_member(Principal.local(), "shared", holder.id, Role.EDITOR)
    await env.connector.service.lock(holder, "shared", "/locked.bin")
    meta = "path " + base64.b64encode(b"/locked.bin").decode()
    created = await env.client.post(
        "/v1/workspaces/shared/uploads",
        headers={**env.auth, **TUS, "Upload-Length": "5", "Upload-Metadata": meta},
    )
    assert created.status_code == 423 and created.json()["holder"] == holder.id


async def test_changes_long_poll_wakes_on_a_write(env: Env) -> None:
    c, auth = env.client, env.auth
    feed = (await c.get("/v1/workspaces/shared/changes", headers=auth)).json()
    cursor = feed["cursor"]
    results: dict[str, object] = {}

    async def poll() -> None:
        response = await c.get(
            "/v1/workspaces/shared/changes", params={"cursor": cursor, "wait": 10}, headers=auth
        )
        results["body"] = response.json()

    with anyio.fail_after(patience(10)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            await anyio.wait_all_tasks_blocked()
            await c.put(
                "/v1/workspaces/shared/content", params={"path": "/w.txt"}, content=b"w", headers=auth
            )
    body = results["body"]
    assert isinstance(body, dict)
    assert [ch["kind"] for ch in body["changes"]] == ["file.created", "upload.completed"]
    empty = await c.get(
        "/v1/workspaces/shared/changes", params={"cursor": body["cursor"], "wait": 0.2}, headers=auth
    )
    assert empty.json()["changes"] == []


async def test_scopes_apply_to_rest_as_to_tools(env: Env) -> None:
    notes_only = await env.hub.agents.create("notes-bot", ["notes.*"])
    await env.connector.service.set_member(Principal.local(), "shared", "agent:notes-bot", Role.EDITOR)
    headers = {"Authorization": f"Bearer {notes_only}"}
    listing = await env.client.get("/v1/workspaces/shared/files", params={"path": "/"}, headers=headers)
    # outside its scopes the workspace tools do not exist for it (404), as in the catalog
    assert listing.status_code == 404 and listing.json()["code"] == "tool_not_found"
    put = await env.client.put(
        "/v1/workspaces/shared/content", params={"path": "/n"}, content=b"n", headers=headers
    )
    assert put.status_code == 404 and put.json()["detail"] == "no tool named 'workspace.write'"
    await env.client.get("/v1/workspaces/shared/files", params={"path": "/"}, headers=env.auth)
    await env.hub.audit.flush()
    calls = (await env.client.get("/v1/calls", headers=env.auth)).json()["calls"]
    assert "workspace.list" in [c["tool"] for c in calls]  # REST control operations are audited calls


async def test_signed_upload_urls_from_the_upload_url_tool(env: Env) -> None:
    agent = Principal.agent("assistant", ["workspace.*"])
    urls = (await env.hub.call(agent, "workspace.upload_url", {"path": "/signed/a.bin"})).value
    put = await env.client.put(urls["put"], content=b"via put")
    assert put.status_code == 201, put.text
    assert put.json()["updated_by"] == agent.id
    created = await env.client.post(urls["tus"], headers={**TUS, "Upload-Length": "7"})
    assert created.status_code == 201, created.text
    done = await env.client.patch(
        created.headers["location"],
        content=b"via tus",
        headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert done.status_code == 204 and done.headers["x-version"] == "2"
    other_path = urls["put"].replace("%2Fsigned%2Fa.bin", "%2Fsigned%2Fb.bin")
    assert (await env.client.put(other_path, content=b"x")).status_code == 401


async def test_tus_uploads_expire(env: Env) -> None:
    meta = "path " + base64.b64encode(b"/late.bin").decode()
    created = await env.client.post(
        "/v1/workspaces/shared/uploads",
        headers={**env.auth, **TUS, "Upload-Length": "10", "Upload-Metadata": meta},
    )
    assert "upload-expires" in {k.lower() for k in created.headers}
    env.clock.advance(86_401)  # a day later
    late = await env.client.head(created.headers["location"], headers=TUS)
    assert late.status_code == 404


async def test_tus_commit_checks_the_lease_again(env: Env) -> None:
    agent = Principal.agent("assistant", ["workspace.*"])
    rival = Principal.agent("rival", ["workspace.*"])
    service = env.connector.service
    await service.set_member(Principal.local(), "shared", rival.id, Role.EDITOR)
    lease = await service.lock(agent, "shared", "/leased.bin", ttl=30)
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"path": "/leased.bin", "lease": lease.token}.items()
    )
    created = await env.client.post(
        "/v1/workspaces/shared/uploads",
        headers={**env.auth, **TUS, "Upload-Length": "8", "Upload-Metadata": meta},
    )
    assert created.status_code == 201, created.text
    patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
    await env.client.patch(
        created.headers["location"], content=b"1234", headers={**patch, "Upload-Offset": "0"}
    )
    env.clock.advance(31)  # the uploader's lease lapses mid-upload ...
    await service.lock(rival, "shared", "/leased.bin")  # ... and a rival takes the path
    last = await env.client.patch(
        created.headers["location"], content=b"5678", headers={**patch, "Upload-Offset": "4"}
    )
    assert last.status_code == 423 and last.json()["holder"] == rival.id
    with pytest.raises(NotFound):
        await service.stat(agent, "shared", "/leased.bin")


async def test_a_full_workspace_answers_507_insufficient_storage(env: Env) -> None:
    """A write that would take the workspace over its byte quota answered 403 Forbidden, which tells a
    client it may not write at all, and its hint said to delete files, which frees nothing (the trash and
    every version count). It is 507 Insufficient Storage now — WebDAV's answer to a quota overrun (RFC
    4331 §6) — on PUT, tus and the tools, with a hint that holds (found by an outside quota probe)."""
    from toolbridge.errors import StorageQuotaExceeded

    await env.connector.service.ensure("shared", quota_bytes=100, members={"agent:assistant": Role.EDITOR})
    c, auth, where = env.client, env.auth, "/v1/workspaces/shared/content"
    assert (await c.put(where, params={"path": "/a"}, content=b"a" * 80, headers=auth)).status_code == 201
    full = await c.put(where, params={"path": "/b"}, content=b"b" * 30, headers=auth)
    assert full.status_code == 507 and full.json()["code"] == "quota_exceeded"
    assert full.json()["limit_name"] == "workspace.quota_bytes" and "raise quota_bytes" in full.json()["hint"]
    assert (await c.delete(where, params={"path": "/a"}, headers=auth)).status_code == 200
    meta = "path " + base64.b64encode(b"/c").decode()
    tus = await c.post(
        "/v1/workspaces/shared/uploads",
        headers={**auth, **TUS, "Upload-Length": "30", "Upload-Metadata": meta},
    )
    assert tus.status_code == 507  # the trash still counts: deleting freed nothing, as the hint says
    agent = Principal.agent("assistant", ["workspace.*"])
    with pytest.raises(StorageQuotaExceeded) as info:
        await env.hub.call(agent, "workspace.write", {"path": "/d", "content": "d" * 30})
    assert info.value.status == 507


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        (
            {"Upload-Metadata": f"path {B64_PATH},sha256 {base64.b64encode(b'zz').decode()}"},
            "no SHA-256 digest",
        ),
        ({"Upload-Metadata": f"path {B64_PATH},path {B64_PATH}"}, "names 'path' twice"),
    ],
)
async def test_tus_metadata_that_cannot_be_right_is_refused_at_creation(
    env: Env, headers: dict[str, str], said: str
) -> None:
    """A 'sha256' that is no digest was accepted and failed the upload only after all its bytes (412); a
    key named twice kept one of them silently (found by the outside REST probe)."""
    created = await env.client.post(
        "/v1/workspaces/shared/uploads", headers={**env.auth, **TUS, "Upload-Length": "10", **headers}
    )
    assert created.status_code == 400 and said in created.json()["detail"], created.text


async def test_an_empty_upload_checksum_is_a_400_not_a_mismatch(env: Env) -> None:
    created = await env.client.post(
        "/v1/workspaces/shared/uploads",
        headers={**env.auth, **TUS, "Upload-Length": "10", "Upload-Metadata": f"path {B64_PATH}"},
    )
    patch = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    for value in ("sha256", "sha256 " + base64.b64encode(b"short").decode()):
        refused = await env.client.patch(
            created.headers["location"], content=b"0123456789", headers={**patch, "Upload-Checksum": value}
        )
        assert refused.status_code == 400 and "not 32" in refused.json()["detail"], refused.text
