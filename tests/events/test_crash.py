"""End to end with real processes: a webhook received by `toolbridge serve`, the server killed with
SIGKILL before any worker ran, then `toolbridge worker` delivers it to the outbound receiver exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests._patience import patience
from tests._serving import loopback_socket, uvicorn_thread
from toolbridge.events import StandardVerifier
from toolbridge.events._sign import sign

from .conftest import GITHUB_SECRET, SW_SECRET
from .test_outbound import Receiver

pytestmark = pytest.mark.e2e
TOOLBRIDGE = [sys.executable, "-m", "toolbridge"]
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, database: "sqlite+aiosqlite:///{root}/tb.db"}}
hooks:
  github: {{verifier: github, secret: env:TB_TEST_GITHUB_SECRET}}
subscriptions:
  mirror:
    source: github
    webhook: {{url: "{url}", secret: env:TB_TEST_SW_SECRET, allow_hosts: ["127.0.0.1:{receiver_port}"]}}
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    r = Receiver()
    sock = loopback_socket()
    r.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    with uvicorn_thread(Starlette(routes=[Route("/hook", r.handle, methods=["POST"])]), sock):
        yield r


def serve(config: Path, env: dict[str, str], *, worker: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*TOOLBRIDGE, "serve", "-c", str(config), *([] if worker else ["--no-worker"])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_healthy(base: str) -> None:
    deadline = time.monotonic() + patience(30)
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{base}/healthz", timeout=patience(1), trust_env=False).status_code == 200:
                return
        except httpx2.TransportError:
            time.sleep(0.1)  # bounded polling for the process's readiness
    raise AssertionError("the server did not become healthy")


def test_kill_9_between_receipt_and_delivery_delivers_exactly_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    sock.close()
    receiver_port = receiver.url.split(":")[2].split("/")[0]
    config = tmp_path / "toolbridge.yaml"
    config.write_text(CONFIG.format(port=port, root=tmp_path, url=receiver.url, receiver_port=receiver_port))
    env = {**os.environ, "TB_TEST_GITHUB_SECRET": GITHUB_SECRET, "TB_TEST_SW_SECRET": SW_SECRET}
    body = b'{"ref": "refs/heads/main", "repository": {"full_name": "octo/hello"}}'
    headers = sign("github", GITHUB_SECRET, body, now=time.time(), event_type="push", delivery_id="d-crash")
    base = f"http://127.0.0.1:{port}"

    server = serve(config, env)
    try:
        wait_healthy(base)
        answer = httpx2.post(f"{base}/hooks/github", content=body, headers=headers, trust_env=False)
        assert answer.status_code == 200 and answer.json()["duplicate"] is False
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # no shutdown hook runs
        server.wait(timeout=patience(15))
    assert receiver.seen == []

    for _ in range(2):  # a second worker run finds nothing left to do
        work(config, env)
    ((sent, payload),) = receiver.seen
    StandardVerifier([SW_SECRET]).verify(payload, sent, float(sent["webhook-timestamp"]))
    assert b'"subject":"octo/hello"' in payload

    server = serve(config, env)  # the provider redelivers after the crash: acknowledged, not stored again
    try:
        wait_healthy(base)
        again = httpx2.post(f"{base}/hooks/github", content=body, headers=headers, trust_env=False)
        assert again.status_code == 200 and again.json() == {"id": answer.json()["id"], "duplicate": True}
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=patience(15))
    work(config, env)
    assert len(receiver.seen) == 1


def work(config: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [*TOOLBRIDGE, "worker", "--once", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert done.returncode == 0, done.stderr
