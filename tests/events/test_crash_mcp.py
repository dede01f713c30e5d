"""End to end with real processes: a webhook posted to /hooks/github reaches MCP clients subscribed to the
matching resource (official Python SDK client, handshake era and 2026-07-28 era) and an outbound webhook
receiver, exactly once each, although `toolbridge serve` is killed with SIGKILL right after receipt.

The first server runs without a worker, so the outbound delivery is still due when it dies. Whether its
MCP notification left before the kill is a race the test does not control: either the clients read the
event then (their cursor moved past it) or they read it after reconnecting to the restarted server
(subscribe again, read after the cursor) — each reads it once either way. A second webhook, after the
restart, is told to both clients by notification and delivered by the restarted server's own worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests._patience import patience
from tests._serving import loopback_socket
from toolbridge.events import StandardVerifier
from toolbridge.events._sign import sign

from .conftest import GITHUB_SECRET, SW_SECRET
from .test_crash import TOOLBRIDGE, receiver, serve, wait_healthy, work
from .test_outbound import Receiver

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning"),
]
__all__ = ["receiver"]  # the fixture, imported for this module's tests

WAIT = patience(30.0)
URI = "toolbridge://events/pushes"
CONFIG = """
server: {{host: 127.0.0.1, port: {port}, database: "sqlite+aiosqlite:///{root}/tb.db"}}
hooks:
  github: {{verifier: github, secret: env:TB_TEST_GITHUB_SECRET}}
subscriptions:
  pushes:
    source: github
    type: push
    principals: [triage]
    webhook: {{url: "{url}", secret: env:TB_TEST_SW_SECRET, allow_hosts: ["127.0.0.1:{receiver_port}"]}}
"""


@dataclass
class Follower:
    """An agent's MCP client that follows the subscription: subscribe, then read after its cursor on every
    update (and once after subscribing, to catch up with what it missed while disconnected)."""

    key: str
    mode: str
    cursor: int | None = None
    seen: list[str] = field(default_factory=list)
    ready: anyio.Event = field(default_factory=anyio.Event)
    got: anyio.Event = field(default_factory=anyio.Event)

    async def follow(self, url: str) -> None:
        send, updates = anyio.create_memory_object_stream[None](100)

        async def handle(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification) and str(message.params.uri) == URI:
                send.send_nowait(None)

        headers = {"Authorization": f"Bearer {self.key}"}
        with send, updates:
            await self._session(url, headers, handle, send.send_nowait, updates)

    async def _session(
        self,
        url: str,
        headers: dict[str, str],
        handle: Callable[[Any], Awaitable[None]],
        tell: Callable[[None], None],
        updates: Any,
    ) -> None:
        async with (
            httpx2.AsyncClient(headers=headers, timeout=patience(60), trust_env=False) as http,
            Client(
                streamable_http_client(url, http_client=http),
                mode=self.mode,  # type: ignore[arg-type]
                message_handler=handle,
            ) as client,
            anyio.create_task_group() as tg,
        ):
            if self.cursor is None:
                self.cursor = (await read(client, URI))["cursor"]
            if self.mode == "legacy":
                await client.subscribe_resource(URI)
            else:
                await tg.start(listen, client, tell)
            await self.catch_up(client)
            self.ready.set()
            async for _ in updates:
                await self.catch_up(client)

    async def catch_up(self, client: Client) -> None:
        page = await read(client, f"{URI}?after={self.cursor}")
        self.seen += [event["id"] for event in page["events"]]
        self.cursor = page["cursor"]
        if page["events"]:
            self.got.set()
            self.got = anyio.Event()

    async def wait_for(self, event_id: str) -> None:
        with anyio.fail_after(WAIT):
            while event_id not in self.seen:
                await self.got.wait()


async def listen(client: Client, tell: Callable[[None], None], *, task_status: Any) -> None:
    async with client.listen(resource_subscriptions=[URI]) as subscription:
        task_status.started()
        async for _ in subscription:
            tell(None)


async def read(client: Client, uri: str) -> dict[str, Any]:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, types.TextResourceContents)
    return json.loads(content.text)  # type: ignore[no-any-return]


async def following(followers: list[Follower], url: str, during: Callable[[], Awaitable[None]]) -> None:
    """Run ``followers`` against ``url`` while ``during`` runs; a follower whose server died just ends."""

    async def run(follower: Follower) -> None:
        try:
            await follower.follow(url)
        except Exception:  # noqa: BLE001  # the server was killed under it: the client's session is gone
            return

    async with anyio.create_task_group() as tg:
        for follower in followers:
            tg.start_soon(run, follower)
        with anyio.fail_after(WAIT):
            for follower in followers:
                await follower.ready.wait()
            for follower in followers:
                follower.ready = anyio.Event()
        await during()
        tg.cancel_scope.cancel()


def post(base: str, body: bytes, delivery: str) -> str:
    headers = sign("github", GITHUB_SECRET, body, now=time.time(), event_type="push", delivery_id=delivery)
    answer = httpx2.post(f"{base}/hooks/github", content=body, headers=headers, trust_env=False)
    assert answer.status_code == 200 and answer.json()["duplicate"] is False, answer.text
    return str(answer.json()["id"])


def test_a_webhook_reaches_subscribed_mcp_clients_of_both_eras_and_the_receiver_once_across_kill_9(
    tmp_path: Path, receiver: Receiver
) -> None:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    sock.close()
    receiver_port = receiver.url.split(":")[2].split("/")[0]
    config = tmp_path / "toolbridge.yaml"
    config.write_text(CONFIG.format(port=port, root=tmp_path, url=receiver.url, receiver_port=receiver_port))
    env = {**os.environ, "TB_TEST_GITHUB_SECRET": GITHUB_SECRET, "TB_TEST_SW_SECRET": SW_SECRET}
    created = subprocess.run(
        [*TOOLBRIDGE, "agents", "create", "triage", "-s", "events.*", "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    base, mcp = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/mcp"
    followers = [Follower(key, "legacy"), Follower(key, "2026-07-28")]
    first: list[str] = []

    server = serve(config, env)  # no worker: the outbound delivery cannot happen before the kill
    try:
        wait_healthy(base)

        async def receive_then_die() -> None:
            first.append(post(base, b'{"ref": "refs/heads/main", "n": 1}', "d-before-kill"))
            os.killpg(server.pid, signal.SIGKILL)  # right after the 200: no shutdown hook runs
            await anyio.to_thread.run_sync(lambda: server.wait(timeout=patience(15)))

        anyio.run(following, followers, mcp, receive_then_die)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=patience(15))
    assert receiver.seen == []

    server = serve(config, env, worker=True)
    try:
        wait_healthy(base)
        second: list[str] = []

        async def one_more() -> None:
            for follower in followers:  # caught up after reconnecting, or read it before the kill
                assert follower.seen == first
            second.append(post(base, b'{"ref": "refs/heads/main", "n": 2}', "d-after-restart"))
            for follower in followers:  # told by notification, in both eras
                await follower.wait_for(second[0])
            with anyio.fail_after(WAIT):
                while len(receiver.seen) < 2:  # noqa: ASYNC110  # the receiver runs in a thread
                    await anyio.sleep(0.05)

        anyio.run(following, followers, mcp, one_more)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=patience(30))
    work(config, env)  # a worker run afterwards finds nothing left to deliver

    for follower in followers:
        assert follower.seen == [first[0], second[0]]
    delivered = []
    for sent, payload in receiver.seen:
        StandardVerifier([SW_SECRET]).verify(payload, sent, float(sent["webhook-timestamp"]))
        delivered.append(json.loads(payload)["data"]["id"])
    assert sorted(delivered) == sorted([first[0], second[0]])
