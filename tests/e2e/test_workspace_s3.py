"""The S3 blob store against moto's S3 server on 127.0.0.1 (started here, killed in teardown)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._patience import patience
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace import BlobInfo, Role, S3BlobStore, Workspaces
from toolbridge.workspace._blobs import hash_file

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (uv sync installs it with the dev group)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    try:
        deadline = time.monotonic() + patience(30)
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "moto_server did not start within 30 s"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)  # bounded polling for readiness
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=patience(10))


def store(url: str, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore(
        "toolbridge-test",
        endpoint_url=url,
        access_key_id="testing",
        secret_access_key="testing",
        scratch=tmp_path,
    )


async def test_blobs_roundtrip_ranges_and_large_files(moto_url: str, tmp_path: Path) -> None:
    blobs = store(moto_url, tmp_path)
    await blobs.ensure_bucket()
    info = await blobs.put_bytes(b"hello s3")
    assert await blobs.exists(info.sha256)
    assert await blobs.read(info.sha256) == b"hello s3"
    assert await blobs.read(info.sha256, 6, 8) == b"s3"
    assert not await blobs.exists("0" * 64)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # over boto3's multipart threshold
    expected = big.read_bytes()
    blob: BlobInfo = hash_file(big)
    await blobs.put_file(big, blob)
    assert not big.exists()  # taken over by the store
    got = b"".join([chunk async for chunk in blobs.stream(blob.sha256)])
    assert got == expected


async def test_workspace_on_s3(moto_url: str, tmp_path: Path) -> None:
    blobs = store(moto_url, tmp_path)
    await blobs.ensure_bucket()
    me = Principal.agent("me", ["workspace.*"])
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}") as db:
        ws = Workspaces(db, blobs)
        await ws.ensure("s3", members={me.id: Role.EDITOR})
        await ws.write(me, "s3", "/a.txt", b"one")
        await ws.write(me, "s3", "/a.txt", b"two")
        assert (await ws.read(me, "s3", "/a.txt"))[1] == b"two"
        assert (await ws.read(me, "s3", "/a.txt", version=1))[1] == b"one"
