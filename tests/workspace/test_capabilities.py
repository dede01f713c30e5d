"""Capabilities die with their holder: signed URLs and tus uploads are checked against the key they were
issued under, its agent's scopes and workspace role on every use; viewers get no upload URL and their
imports never reach the network."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest

from tests._patience import patience
from toolbridge import Principal
from toolbridge.errors import NotFound, PermissionDenied
from toolbridge.workspace import HttpImportSource, Importer, ImportPolicy, Role

from .conftest import Env

pytestmark = pytest.mark.anyio
TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


async def _agent(env: Env, name: str, role: Role) -> tuple[Principal, dict[str, str]]:
    key = await env.hub.agents.create(name, ["workspace.*"])
    await env.connector.service.set_member(Principal.local(), "shared", f"agent:{name}", role)
    return await env.hub.authenticate(key), {"Authorization": f"Bearer {key}"}


async def _half_done_upload(env: Env, url: str, headers: dict[str, str]) -> str:
    meta = "path " + base64.b64encode(b"/cap/tus.bin").decode()
    created = await env.client.post(
        url, headers={**headers, **TUS, "Upload-Length": "8", "Upload-Metadata": meta}
    )
    assert created.status_code == 201, created.text
    first = await env.client.patch(
        created.headers["location"], content=b"1234", headers={**PATCH, "Upload-Offset": "0"}
    )
    assert first.status_code == 204, first.text
    return str(created.headers["location"])


async def test_revoking_an_agent_kills_its_signed_urls_and_open_uploads(env: Env) -> None:
    agent, auth = await _agent(env, "uploader", Role.EDITOR)
    urls = (await env.hub.call(agent, "workspace.upload_url", {"path": "/cap/a.bin"})).value
    await env.hub.call(agent, "workspace.write", {"path": "/cap/big.txt", "content": "y" * 500})
    download = (await env.hub.call(agent, "workspace.read", {"path": "/cap/big.txt"})).value["url"]
    by_url = await _half_done_upload(env, urls["tus"], {})
    by_key = await _half_done_upload(env, "/v1/workspaces/shared/uploads", auth)

    assert await env.hub.agents.revoke("uploader") == 1

    put = await env.client.put(urls["put"], content=b"after revoke")
    assert put.status_code == 401, put.text
    assert (await env.client.get(download)).status_code == 401
    for location in (by_url, by_key):
        rest = await env.client.patch(location, content=b"5678", headers={**PATCH, "Upload-Offset": "4"})
        assert rest.status_code == 401, rest.text
        assert (await env.client.head(location, headers=TUS)).status_code == 401
    for path in ("/cap/a.bin", "/cap/tus.bin"):
        with pytest.raises(NotFound):
            await env.connector.service.stat(Principal.local(), "shared", path)


async def test_a_lost_scope_or_role_refuses_the_capability(env: Env) -> None:
    agent, _ = await _agent(env, "shifty", Role.EDITOR)
    urls = (await env.hub.call(agent, "workspace.upload_url", {"path": "/cap/b.bin"})).value
    location = await _half_done_upload(env, urls["tus"], {})
    await env.hub.agents.create("shifty", ["workspace.*:read"])  # an operator narrows its scopes
    assert (await env.client.put(urls["put"], content=b"x")).status_code == 401
    await env.hub.agents.create("shifty", ["workspace.*"])
    await env.connector.service.set_member(Principal.local(), "shared", agent.id, Role.VIEWER)
    more = await env.client.patch(location, content=b"56", headers={**PATCH, "Upload-Offset": "4"})
    assert more.status_code == 403, more.text  # refused before a byte is written, not only at the end
    assert (await env.client.head(location, headers=TUS)).headers["upload-offset"] == "4"
    last = await env.client.patch(location, content=b"5678", headers={**PATCH, "Upload-Offset": "4"})
    assert last.status_code == 403, last.text
    assert (await env.client.put(urls["put"], content=b"x")).status_code == 403


async def test_a_viewer_gets_no_upload_url(env: Env) -> None:
    viewer, auth = await _agent(env, "vera", Role.VIEWER)
    with pytest.raises(PermissionDenied, match="viewer"):
        await env.hub.call(viewer, "workspace.upload_url", {"path": "/v.bin"})
    over_rest = await env.client.post(
        "/v1/tools/workspace.upload_url/call", json={"arguments": {"path": "/v.bin"}}, headers=auth
    )
    assert over_rest.status_code == 403


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener that nobody must connect to: a connection would wait in its accept queue."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


def _silent(sock: socket.socket) -> bool:
    try:
        sock.accept()[0].close()
    except BlockingIOError:
        return True
    return False


async def test_a_viewer_import_never_reaches_the_network(env: Env, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    policy = ImportPolicy(allow_loopback=True, allowed_ports=(port,), timeout=patience(5.0))
    env.connector.importer = Importer([HttpImportSource(policy=policy)])
    viewer, auth = await _agent(env, "vic", Role.VIEWER)
    url = f"http://127.0.0.1:{port}/file.txt"
    with pytest.raises(PermissionDenied):
        await env.hub.call(viewer, "workspace.import_url", {"url": url, "path": "/i.txt"})
    over_rest = await env.client.post(
        "/v1/workspaces/shared/import", json={"url": url, "path": "/i.txt"}, headers=auth
    )
    assert over_rest.status_code == 403
    assert _silent(listener), "the viewer's import connected to the URL"
