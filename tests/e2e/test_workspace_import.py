"""URL import for local development: ``allow_loopback`` fetches from a real server on 127.0.0.1, and the
environment's proxy settings are ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests._serving import loopback_socket, uvicorn_thread
from toolbridge.errors import BadRequest
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace import HttpImportSource, Importer, ImportPolicy, LocalBlobStore, Role, Workspaces

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
SEEN: list[str] = []


async def file(request: Request) -> Response:
    SEEN.append(request.headers.get("host", ""))
    return PlainTextResponse("imported bytes")


async def hop(_request: Request) -> Response:
    return RedirectResponse("/file.txt", status_code=302)


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    app = Starlette(routes=[Route("/file.txt", file), Route("/hop", hop)])
    sock = loopback_socket()
    with uvicorn_thread(app, sock, lifespan="off"):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_allow_loopback_imports_from_a_local_server(
    origin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a dead proxy: must not be used
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    me = Principal.agent("dev", ["workspace.*"])
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}") as db:
        ws = Workspaces(db, LocalBlobStore(tmp_path / "blobs", fsync=False))
        await ws.ensure("dev", members={me.id: Role.EDITOR})
        local = Importer([HttpImportSource(policy=ImportPolicy(allow_loopback=True))])
        entry = await local.import_into(ws, me, "dev", f"{origin}/hop", "/in.txt")
        assert (await ws.read(me, "dev", "/in.txt"))[1] == b"imported bytes"
        assert entry.content_type == "text/plain"
        assert SEEN[-1] == origin.removeprefix("http://")
        strict = Importer([HttpImportSource()])
        with pytest.raises(BadRequest):
            await strict.import_into(ws, me, "dev", f"{origin}/file.txt", "/no.txt")


async def test_allow_loopback_with_allowed_ports_reaches_no_other_local_port(
    origin: str, tmp_path: Path
) -> None:
    """``url_import: {allow_loopback: true, allowed_ports: [18080]}`` fetched every local port (6379,
    5432, 22…): the port rule was skipped once loopback was allowed."""
    me = Principal.agent("dev", ["workspace.*"])
    port = int(origin.rsplit(":", 1)[1])
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}") as db:
        ws = Workspaces(db, LocalBlobStore(tmp_path / "blobs", fsync=False))
        await ws.ensure("dev", members={me.id: Role.EDITOR})
        before = len(SEEN)
        other = Importer(
            [HttpImportSource(policy=ImportPolicy(allow_loopback=True, allowed_ports=(port + 1,)))]
        )
        with pytest.raises(BadRequest):
            await other.import_into(ws, me, "dev", f"{origin}/file.txt", "/no.txt")
        assert len(SEEN) == before, "the local server on a port outside allowed_ports was reached"
        named = Importer([HttpImportSource(policy=ImportPolicy(allow_loopback=True, allowed_ports=(port,)))])
        await named.import_into(ws, me, "dev", f"{origin}/file.txt", "/in.txt")
        assert len(SEEN) == before + 1
