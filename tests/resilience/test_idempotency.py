"""RELIABILITY.md B: idempotent writes — stored outcomes, mismatches, in-flight keys, tenants."""

from __future__ import annotations

import functools

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime, http_hub
from toolbridge import Conflict, Hub, IdempotencyKeyReused, Principal
from toolbridge.connectors._http import send
from toolbridge.errors import UpstreamStatusError, problem
from toolbridge.resilience import ResiliencePolicy, RetryPolicy
from toolbridge.surfaces.app import create_app
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
ONE_ATTEMPT = ResiliencePolicy(retry=RetryPolicy(max_attempts=1))


def add_keyless_create(hub: Hub, client: httpx2.AsyncClient) -> None:
    """``up.create_blind``: a write whose idempotency key does not reach the upstream."""

    @hub.tool(connector="up")
    async def create_blind(name: str) -> object:
        request = client.build_request("POST", "/things", json={"name": name})
        return (await send(client, request)).json()


async def test_i1_same_key_replays_the_stored_5xx_of_a_write_whose_key_stays_here(
    upstream: Upstream, fake_time: FakeTime, sqlite_url: str
) -> None:
    """A 500 may come after the write was applied: a tool whose key does not reach the upstream cannot run
    again safely, so the failure is stored and replayed — said to be a replay, with how to run it again."""
    upstream.then(Reply(500, body={"error": "boom"}), Reply(200))
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT, database=sqlite_url)

    add_keyless_create(hub, client)

    async with client, hub:
        errors = []
        for _ in range(2):
            with pytest.raises(UpstreamStatusError) as info:
                await hub.call(Principal.local(), "up.create_blind", {"name": "a"}, idempotency_key="k1")
            assert info.value.upstream_status == 500 and info.value.body == '{"error": "boom"}'
            errors.append(problem(info.value))
        outcomes = [r.entry.outcome for r in await hub.audit.tail(5)]
    assert len(upstream.requests) == 1
    assert outcomes == ["error", "replayed"]
    assert "replayed" not in errors[0] and errors[1]["replayed"] is True
    assert "not run again: a new key runs it" in str(errors[1]["hint"])


async def test_i1_same_key_runs_again_after_a_transient_failure_when_the_key_reaches_the_upstream(
    upstream: Upstream, fake_time: FakeTime, sqlite_url: str
) -> None:
    """The key travels, so the upstream answers it once: a 500 (or a timeout, a reset) is not stored, and
    the key's retry runs the call again and gets the upstream's real answer — not the 500 for 24 h."""
    upstream.then(Reply(500, body={"error": "boom"}), Reply(200, body={"id": 7}))
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT, database=sqlite_url)
    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
        again = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
        replay = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
    assert again.value == replay.value == {"id": 7} and (again.replayed, replay.replayed) == (False, True)
    assert [headers.get("idempotency-key") for _, _, headers, _ in upstream.requests] == ["k1", "k1"]


@pytest.mark.parametrize("status", [429, 503])
async def test_i1_a_refusal_that_applied_nothing_is_not_stored_even_when_the_key_stays_here(
    upstream: Upstream, fake_time: FakeTime, sqlite_url: str, status: int
) -> None:
    """A 429 or 503 says the upstream did not process the request: the same key runs it again once the
    pause is over (it used to answer the refusal, and its stale "try again in N s", for 24 h)."""
    upstream.then(Reply(status, headers={"Retry-After": "1"}), Reply(200, body={"id": 8}))
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT, database=sqlite_url)

    add_keyless_create(hub, client)

    async with client, hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(Principal.local(), "up.create_blind", {"name": "a"}, idempotency_key="k1")
        await fake_time.sleep(2)
        again = await hub.call(Principal.local(), "up.create_blind", {"name": "a"}, idempotency_key="k1")
    assert again.value == {"id": 8} and len(upstream.requests) == 2


async def test_i1_same_key_replays_success(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(200, body={"id": 7}))
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT)
    async with client, hub:
        first = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
        second = await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
    assert first.value == second.value == {"id": 7}
    assert (first.replayed, second.replayed) == (False, True)
    assert len(upstream.requests) == 1 and upstream.effect_count == 1


async def test_i2_same_key_different_body_is_422(upstream: Upstream, fake_time: FakeTime) -> None:
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT)
    async with client, hub:
        await hub.call(Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
        with pytest.raises(IdempotencyKeyReused) as info:
            await hub.call(Principal.local(), "up.create", {"name": "b"}, idempotency_key="k1")
    assert info.value.status == 422
    assert len(upstream.requests) == 1


async def test_i3_same_key_in_flight_is_409(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(200, hang=patience(60)))  # in flight until the test ends it: no window to race
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT)
    call = functools.partial(hub.call, Principal.local(), "up.create", {"name": "a"}, idempotency_key="k1")
    async with client, hub, anyio.create_task_group() as tg:
        tg.start_soon(call)
        with anyio.fail_after(patience(10)):
            while not upstream.requests:  # noqa: ASYNC110 - polls the upstream's own record, bounded
                await anyio.sleep(0.01)
        with pytest.raises(Conflict) as info:
            await call()
        tg.cancel_scope.cancel()  # the first call, still in flight
    assert info.value.status == 409
    assert len(upstream.requests) == 1 and upstream.effect_count == 1


async def test_i5_keys_are_scoped_per_principal(upstream: Upstream, fake_time: FakeTime) -> None:
    upstream.then(Reply(200, body={"for": "a"}), Reply(200, body={"for": "b"}))
    hub, client = http_hub(upstream.url, fake_time, ONE_ATTEMPT)
    async with client, hub:
        a = await hub.call(Principal.agent("a", ["*"]), "up.create", {"name": "x"}, idempotency_key="same")
        b = await hub.call(Principal.agent("b", ["*"]), "up.create", {"name": "x"}, idempotency_key="same")
    assert (a.value, b.value) == ({"for": "a"}, {"for": "b"})
    assert not b.replayed


async def test_rest_idempotency_key_header_replays_and_conflicts() -> None:
    hub = Hub(agents={"w": ["*"]})
    effects: list[str] = []

    @hub.tool(connector="t")
    async def write(text: str) -> dict[str, int]:
        effects.append(text)
        return {"n": len(effects)}

    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("w")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "op-1"}
            first = await http.post(
                "/v1/tools/t.write/call", json={"arguments": {"text": "x"}}, headers=headers
            )
            again = await http.post(
                "/v1/tools/t.write/call", json={"arguments": {"text": "x"}}, headers=headers
            )
            other = await http.post(
                "/v1/tools/t.write/call", json={"arguments": {"text": "y"}}, headers=headers
            )
    assert first.json()["result"] == again.json()["result"] == {"n": 1}
    assert again.headers["idempotent-replayed"] == "true" and again.json()["replayed"] is True
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert effects == ["x"]


async def test_rate_limited_rest_answer_has_retry_after() -> None:
    hub = Hub(agents={"w": ["*"]}, agent_rates={"w": "1/minute"})

    @hub.tool(connector="t", read_only=True)
    async def ping() -> str:
        return "pong"

    app = create_app(hub)
    async with app.router.lifespan_context(app):
        key = await hub.agents.create("w")
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as http:
            auth = {"Authorization": f"Bearer {key}"}
            assert (await http.post("/v1/tools/t.ping/call", headers=auth)).status_code == 200
            limited = await http.post("/v1/tools/t.ping/call", headers=auth)
    assert limited.status_code == 429
    assert 59 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["code"] == "rate_limited"


async def test_store_on_both_backends(database_url: str) -> None:
    from toolbridge.resilience._idempotency import IdempotencyStore
    from toolbridge.storage import Database

    async with Database(database_url) as db:
        store = IdempotencyStore(db)
        assert await store.claim("agent:a", "k", "t.x", "d1") is None
        with pytest.raises(Conflict):
            await store.claim("agent:a", "k", "t.x", "d1")
        with pytest.raises(IdempotencyKeyReused):
            await store.claim("agent:a", "k", "t.x", "d2")
        await store.complete("agent:a", "k", result={"value": 1, "text": "1", "truncated": False, "size": 1})
        replay = await store.claim("agent:a", "k", "t.x", "d1")
        assert replay is not None and replay.raise_or_result()["value"] == 1
        assert await store.claim("agent:b", "k", "t.x", "d1") is None  # another tenant, another record


async def test_a_queued_answer_never_overwrites_the_outcome_its_worker_stored(database_url: str) -> None:
    """The call commits its outbox item, then stores "queued" for its key; a worker that finished the
    item in between had stored the final result, which the "queued" write then replaced: replays said
    "queued" for the record's whole retention (an outside chaos probe reproduced it with a slow commit)."""
    from toolbridge.resilience._idempotency import IdempotencyStore
    from toolbridge.storage import Database

    final = {"value": {"id": 1}, "text": "{}", "truncated": False, "size": 2}
    queued = {"value": {"status": "queued"}, "text": "queued", "truncated": False, "size": 6, "queued": True}
    async with Database(database_url) as db:
        store = IdempotencyStore(db)
        assert await store.claim("agent:a", "late", "t.x", "d") is None
        await store.complete("agent:a", "late", result=final)  # the worker, first
        await store.complete_queued("agent:a", "late", result=queued)  # the call's answer, after it
        replay = await store.claim("agent:a", "late", "t.x", "d")
        assert replay is not None and replay.raise_or_result()["value"] == {"id": 1}
        assert await store.claim("agent:a", "early", "t.x", "d") is None
        await store.complete_queued("agent:a", "early", result=queued)  # the usual order
        await store.complete("agent:a", "early", result=final)
        replay = await store.claim("agent:a", "early", "t.x", "d")
        assert replay is not None and replay.raise_or_result()["value"] == {"id": 1}
        assert await store.claim("agent:a", "waiting", "t.x", "d") is None
        await store.complete_queued("agent:a", "waiting", result=queued)  # not finished yet: "queued"
        replay = await store.claim("agent:a", "waiting", "t.x", "d")
        assert replay is not None and replay.raise_or_result()["queued"] is True
