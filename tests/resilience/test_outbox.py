"""Queue for later: writes that exhausted their retries go to a durable outbox and are retried by a worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Hub, Principal
from toolbridge.connectors import Invocation
from toolbridge.connectors._http import send
from toolbridge.errors import UpstreamStatusError
from toolbridge.resilience import ResiliencePolicy, RetryPolicy
from toolbridge.resilience._outbox import Outbox
from toolbridge.storage import Database
from toolbridge.testing import Reply, Upstream, running_upstream
from toolbridge.worker import OutboxWorker, add_outbox_tool

pytestmark = pytest.mark.anyio
QUEUE = ResiliencePolicy(retry=RetryPolicy(max_attempts=2, base_delay=0.01), on_exhausted="queue")


async def test_transient_write_failure_is_queued_then_applied_once(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(503), Reply(503))
    hub, client = http_hub(upstream.url, fake_time, QUEUE)
    add_outbox_tool(hub)
    async with client, hub:
        queued = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="op-1")
        assert queued.queued and queued.value["status"] == "queued"
        item_id = queued.value["outbox_id"]
        status = await hub.call(Principal.local(), "outbox.status", {"outbox_id": item_id})
        assert status.value["state"] == "queued" and status.value["last_error"]["upstream_status"] == 503
        # a replay of the same key reports the queued write, it does not call again
        replay = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="op-1")
        assert replay.replayed and replay.value["outbox_id"] == item_id
        await hub.outbox._update((await hub.outbox.get(item_id)), next_attempt_at=_past())  # due now
        assert await OutboxWorker(hub).run_once() == 1
        done = await hub.outbox.get(item_id)
        final = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="op-1")
        await hub.audit.flush()
        outcomes = [r.entry.outcome for r in await hub.audit.tail(10) if r.entry.tool == "up.create"]
    assert done is not None and done.state == "done" and done.attempts == 1
    assert final.replayed and final.value == {"ok": True}  # the key now answers the final result
    assert upstream.effect_count == 1 and len(upstream.requests) == 3
    assert outcomes[0] == "queued"


async def test_reads_and_permanent_errors_are_never_queued(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(503), Reply(503), Reply(422))
    hub, client = http_hub(upstream.url, fake_time, QUEUE)
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(Principal.local(), "up.fetch")
        with pytest.raises(UpstreamStatusError):
            await hub.call(Principal.local(), "up.create", {"name": "a"})
        assert await hub.outbox.items() == []


async def test_claims_are_exclusive_and_expired_leases_reclaimed(database_url: str) -> None:
    from toolbridge.errors import UpstreamUnavailable

    async with Database(database_url) as db:
        box = Outbox(db, base_delay=0, lease=60)
        for i in range(5):
            await box.enqueue("local:local", "t.w", {"i": i}, None, UpstreamUnavailable("down", sent=False))
        first, second = await box.claim_due(3), await box.claim_due(3)
        assert len(first) == 3 and len(second) == 2
        assert not {i.id for i in first} & {i.id for i in second}
        assert await box.claim_due(3) == []
        lapsed = Outbox(db, base_delay=0, lease=-1)  # a worker whose lease has run out
        await box.retry_later(first[0], UpstreamUnavailable("still down", sent=False))
        stolen = await lapsed.claim_due(10)
        assert {i.id for i in stolen} == {first[0].id}
        assert stolen[0].attempts == 2


def _past():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


_PRODUCER = textwrap.dedent(
    """
    import sys, anyio, httpx2
    from toolbridge import Hub, Principal
    from toolbridge.connectors import Invocation
    from toolbridge.connectors._http import send
    from toolbridge.resilience import ResiliencePolicy, RetryPolicy

    url, db = sys.argv[1], sys.argv[2]
    hub = Hub(database=db)
    client = httpx2.AsyncClient(base_url=url, trust_env=False)

    @hub.tool(connector="up")
    async def create(name: str, invocation: Invocation) -> object:
        request = client.build_request("POST", "/things", json={"name": name},
                                       headers={"Idempotency-Key": invocation.idempotency_key or ""})
        return (await send(client, request)).json()

    hub.resilience.configure("up", ResiliencePolicy(retry=RetryPolicy(max_attempts=1), on_exhausted="queue"))

    async def main():
        async with hub:
            for i in range(1000):
                result = await hub.call(Principal.local(), "up.create", {"name": f"n{i}"})
                print(result.value["outbox_id"], flush=True)

    anyio.run(main)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _produce_then_kill(url: str, db: str) -> list[str]:
    """Run a hub that queues writes; SIGKILL it after it reported 10 of them as queued."""
    producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, url, db], stdout=subprocess.PIPE, text=True)
    assert producer.stdout is not None
    announced = [producer.stdout.readline().strip() for _ in range(10)]
    os.kill(producer.pid, signal.SIGKILL)  # mid-way, no shutdown of any kind
    producer.wait(timeout=patience(30))
    producer.stdout.close()
    return announced


async def test_queued_writes_survive_kill_9(tmp_path: Path) -> None:
    port, db = _free_port(), f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    url = f"http://127.0.0.1:{port}"  # nothing listens yet: every write fails before sending
    announced = await anyio.to_thread.run_sync(_produce_then_kill, url, db)
    assert all(announced)

    async with running_upstream(port) as upstream:
        hub = Hub(database=db)
        client = httpx2.AsyncClient(base_url=url, trust_env=False)

        @hub.tool(connector="up")
        async def create(name: str, invocation: Invocation) -> object:
            headers = {"Idempotency-Key": invocation.idempotency_key or ""}
            request = client.build_request("POST", "/things", json={"name": name}, headers=headers)
            return (await send(client, request)).json()

        async with client, hub:
            for item in await hub.outbox.items(limit=2000):
                await hub.outbox._update(item, next_attempt_at=_past())
            while await OutboxWorker(hub).run_once():
                pass
            items = {i.id: i for i in await hub.outbox.items(limit=2000)}
    assert set(announced) <= set(items)  # every write the producer reported as queued is there...
    assert all(i.state == "done" for i in items.values())  # ...and was applied
    assert upstream.effect_count == len(items)  # once each
