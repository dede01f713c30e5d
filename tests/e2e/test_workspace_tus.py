"""tus 1.0 uploads with the real ``tuspy`` client against uvicorn on 127.0.0.1: interrupted and resumed,
concurrent, and a checksum mismatch refused."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from toolbridge import Hub
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.e2e

CONFIG = """
server: {host: 127.0.0.1, port: PORT, database: "sqlite+aiosqlite:///DB"}
connectors:
  workspace:
    kind: workspace
    members: {assistant: editor}
    blob_path: BLOBS
agents:
  assistant: {scopes: ["workspace.*"]}
"""


class Sha256Uploader(Uploader):
    """tuspy's own extension point: the checksum algorithm pair (sha256 is what our server speaks)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


class LyingUploader(Uploader):
    CHECKSUM_ALGORITHM_PAIR = ("sha256", lambda data: hashlib.sha256(b"tampered" + data))


@dataclass
class Server:
    base: str
    key: str
    port: int


@contextmanager
def serve(tmp_path: Path) -> Iterator[Server]:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    text = (
        CONFIG.replace("PORT", str(port))
        .replace("DB", str(tmp_path / "tb.db"))
        .replace("BLOBS", str(tmp_path / "blobs"))
    )
    settings = parse_settings(text)

    async def issue_key() -> str:
        async with Hub.from_settings(settings) as hub:
            return await hub.agents.create("assistant")

    key = anyio.run(issue_key)
    app = create_app(Hub.from_settings(settings))
    with uvicorn_thread(app, sock, lifespan="on"):
        yield Server(f"http://127.0.0.1:{port}", key, port)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path) as s:
        yield s


def _client(server: Server) -> tus_client.TusClient:
    return tus_client.TusClient(
        f"{server.base}/v1/workspaces/shared/uploads", headers={"Authorization": f"Bearer {server.key}"}
    )


def _download(server: Server, path: str) -> bytes:
    with httpx2.Client(trust_env=False, timeout=patience(30)) as http:
        response = http.get(
            f"{server.base}/v1/workspaces/shared/content",
            params={"path": path},
            headers={"Authorization": f"Bearer {server.key}"},
        )
    assert response.status_code == 200, response.text
    return response.content


def _interrupted_patch(server: Server, url: str, offset: int, chunk: bytes, declared: int) -> None:
    """Send a PATCH that promises ``declared`` bytes, send only ``chunk``, then drop the connection."""
    path = url.split(f":{server.port}", 1)[1]
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=patience(10)) as conn:
        conn.sendall(head + chunk)


def test_upload_interrupted_then_resumed(server: Server, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with source.open("rb") as f:
        first = Sha256Uploader(
            file_stream=f, client=_client(server), chunk_size=1024 * 1024,
            metadata={"path": "/big.bin", "sha256": hashlib.sha256(data).hexdigest()}, upload_checksum=True,
        )  # fmt: skip
        first.upload(stop_at=1024 * 1024)  # one chunk, then the "agent" goes away
    assert first.offset == 1024 * 1024
    # the next PATCH is cut off mid-body: the server keeps what arrived
    _interrupted_patch(
        server, first.url, first.offset, data[first.offset : first.offset + 300_000], 1_000_000
    )
    with source.open("rb") as f:
        resumed = Sha256Uploader(
            file_stream=f, url=first.url, client=_client(server), chunk_size=1024 * 1024, upload_checksum=True
        )
        assert resumed.offset > 1024 * 1024  # resumed from what the server kept, not from zero
        resumed.upload()
    assert _download(server, "/big.bin") == data


def test_concurrent_uploads(server: Server, tmp_path: Path) -> None:
    payloads = {f"/c/{i}.bin": os.urandom(700_000 + i) for i in range(6)}

    def upload(path: str) -> None:
        source = tmp_path / path.replace("/", "_")
        source.write_bytes(payloads[path])
        with source.open("rb") as f:
            Sha256Uploader(
                file_stream=f, client=_client(server), chunk_size=256 * 1024,
                metadata={"path": path}, upload_checksum=True,
            ).upload()  # fmt: skip

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(upload, payloads, timeout=patience(120)))
    for path, data in payloads.items():
        assert _download(server, path) == data


def test_checksum_mismatch_is_refused(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"payload" * 1000)
    with source.open("rb") as f:
        liar = LyingUploader(
            file_stream=f, client=_client(server), metadata={"path": "/x.bin"}, upload_checksum=True
        )
        with pytest.raises(TusCommunicationError) as info:
            liar.upload()
    assert info.value.status_code == 460
    with httpx2.Client(trust_env=False) as http:
        head = http.head(liar.url, headers={"Tus-Resumable": "1.0.0"})
        assert head.headers["upload-offset"] == "0"
        missing = http.get(
            f"{server.base}/v1/workspaces/shared/stat",
            params={"path": "/x.bin"},
            headers={"Authorization": f"Bearer {server.key}"},
        )
    assert missing.status_code == 404


def test_whole_file_sha256_mismatch_is_refused_at_commit(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "y.bin"
    source.write_bytes(b"abc" * 100)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with source.open("rb") as f, pytest.raises(TusCommunicationError) as info:
        Sha256Uploader(
            file_stream=f, client=_client(server), metadata={"path": "/y.bin", "sha256": wrong}
        ).upload()
    assert info.value.status_code == 412
