"""Crash recovery of in-flight keys: a claim whose process died is resolved in seconds, never a 409 loop."""

from __future__ import annotations

import datetime as dt
import functools

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime
from tests.resilience.test_keys import document, keyed_hub
from toolbridge import Hub, Principal
from toolbridge.errors import KeyInFlight, OutcomeUnknown
from toolbridge.resilience._idempotency import IdempotencyStore
from toolbridge.storage import Database
from toolbridge.surfaces.app import create_app
from toolbridge.testing import Upstream

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def die_mid_call(db: Database, clock: Clock, tool: str, digest: str) -> None:
    """Another process claims key 'k' for ``tool`` and is killed before it records an outcome."""
    dead = IdempotencyStore(db, clock=clock)
    assert await dead.claim("local:local", "k", tool, digest, request_id="req-dead") is None


async def test_an_orphaned_claim_answers_outcome_unknown_with_the_original_request_id(
    database_url: str,
) -> None:
    """Regression: after kill -9 mid-call, every retry got 409 for 10 minutes."""
    clock = Clock()
    hub = Hub(database=Database(database_url))
    calls: list[str] = []

    @hub.tool(connector="svc")
    async def write(op: str) -> str:  # takes no Invocation: the key cannot travel, a repeat is unsafe
        calls.append(op)
        return op

    hub.idempotency = IdempotencyStore(hub.database, clock=clock)
    async with hub:
        await die_mid_call(hub.database, clock, "svc.write", _digest({"op": "a"}))
        with pytest.raises(KeyInFlight) as busy:  # its lease still runs: maybe it is only slow
            await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
        clock.now += dt.timedelta(seconds=busy.value.retry_after)  # the caller waits as told
        with pytest.raises(OutcomeUnknown) as unknown:
            await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
        with pytest.raises(OutcomeUnknown):  # and it stays the answer for this key
            await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
    assert busy.value.status == 409 and 1 <= busy.value.retry_after <= 15
    assert "req-dead" in unknown.value.message
    assert calls == []  # never repeated


async def test_an_orphaned_claim_whose_key_travels_is_taken_over_and_sent_again(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    clock = Clock()
    hub = keyed_hub(upstream, fake_time, document())
    hub.idempotency = IdempotencyStore(hub.database, clock=clock)
    async with hub:
        await die_mid_call(hub.database, clock, "api.create_thing", _digest({"name": "a"}))
        clock.now += dt.timedelta(seconds=16)
        result = await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="k")
        replay = await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="k")
    assert result.value == {"ok": True} and replay.replayed
    assert [h.get("idempotency-key") for _, _, h, _ in upstream.requests] == ["k"]  # the upstream dedupes


async def test_a_live_claim_is_kept_alive_by_its_heartbeat(sqlite_url: str) -> None:
    clock = Clock()
    async with Database(sqlite_url) as db:
        alive = IdempotencyStore(db, clock=clock, lease=0.3)
        other = IdempotencyStore(db, clock=clock, lease=0.3)
        async with alive:
            assert await alive.claim("p", "k", "t.x", "d") is None
            for _ in range(3):
                clock.now += dt.timedelta(seconds=0.2)
                await alive.renew()  # what its heartbeat does every lease/3
                with pytest.raises(KeyInFlight):
                    await other.claim("p", "k", "t.x", "d")


async def test_rest_answers_409_with_retry_after_while_a_key_is_in_flight() -> None:
    hub = Hub(agents={"w": ["*"]})
    started, release = anyio.Event(), anyio.Event()

    @hub.tool(connector="t")
    async def write(text: str) -> str:
        started.set()
        await release.wait()
        return text

    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("w")
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "op-1"}
            body = {"arguments": {"text": "x"}}
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    functools.partial(http.post, "/v1/tools/t.write/call", json=body, headers=headers)
                )
                with anyio.fail_after(patience(30)):
                    await started.wait()
                busy = await http.post("/v1/tools/t.write/call", json=body, headers=headers)
                release.set()
    assert busy.status_code == 409 and busy.json()["code"] == "conflict"
    assert 1 <= int(busy.headers["retry-after"]) <= 15


def _digest(arguments: dict[str, object]) -> str:
    from toolbridge.audit import args_digest

    return args_digest(arguments)


@pytest.mark.parametrize("key", ["k" * 256, "", "tab\there", "naïve"])
async def test_a_bad_key_is_refused_on_every_surface_before_anything_runs(key: str) -> None:
    """Regression: Hub.call took a 256-character key (PostgreSQL then failed with a storage error)."""
    from toolbridge.errors import BadRequest

    hub = Hub()
    calls: list[str] = []

    @hub.tool(connector="svc")
    async def write(op: str) -> str:
        calls.append(op)
        return op

    async with hub:
        with pytest.raises(BadRequest, match="1-255 printable ASCII"):
            await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key=key)
    assert calls == []
