"""The outbox worker, safe by construction: it finds the principal on every backend, reschedules what is
transient, fails for good only what can never succeed (with an event), and never applies an item twice."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import pytest

from tests._patience import patience
from tests.resilience.conftest import FakeTime
from toolbridge import Hub, Limits, Principal
from toolbridge.catalog import Tool
from toolbridge.connectors import Connector, Invocation, key_carrier
from toolbridge.connectors._events import HubEvent, LogMessage
from toolbridge.errors import (
    CircuitOpen,
    ConfigurationError,
    CredentialsError,
    PermissionDenied,
    RateLimited,
    StorageError,
    TokenRefreshFailed,
    ToolbridgeError,
    UpstreamBusy,
    UpstreamStatusError,
    UpstreamUnavailable,
)
from toolbridge.resilience import Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.resilience._outbox import Outbox, OutboxItem
from toolbridge.storage import Database
from toolbridge.worker import OutboxWorker

pytestmark = pytest.mark.anyio
QUEUE = ResiliencePolicy(retry=RetryPolicy(max_attempts=1, base_delay=0.01), on_exhausted="queue")


def queue_hub(database_url: str, fake_time: FakeTime, **hub_kwargs: Any) -> tuple[Hub, dict[str, int]]:
    """A hub whose 'svc.write' applies one effect per key (Stripe-style) and fails while ``down`` is set."""
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(1))
    hub = Hub(database=Database(database_url), resilience=resilience, **hub_kwargs)
    effects: dict[str, int] = {}
    state = {"down": 1}

    @hub.tool(connector="svc")
    async def write(op: str, invocation: Invocation) -> str:
        if state["down"]:
            state["down"] -= 1
            raise UpstreamUnavailable("refused", sent=False, tool="svc.write")
        key = invocation.idempotency_key or op
        effects[key] = effects.get(key, 0) + 1
        return op

    resilience.configure("svc", QUEUE)
    return hub, effects


async def due_now(hub: Hub) -> None:
    for item in await hub.outbox.items():
        await hub.outbox._update(item, next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


async def test_an_agents_queued_write_is_applied_on_every_backend(
    database_url: str, fake_time: FakeTime
) -> None:
    """Regression: on PostgreSQL the principal lookup grouped by a json column and every item failed."""
    hub, effects = queue_hub(database_url, fake_time, agents={"bot": ["svc.*"]})
    async with hub:
        await hub.agents.create("bot")
        bot = await hub.agents.principal_for("agent:bot")
        queued = await hub.call(bot, "svc.write", {"op": "a"}, idempotency_key="k-1")
        assert queued.queued
        await due_now(hub)
        assert await OutboxWorker(hub).run_once() == 1
        (item,) = await hub.outbox.items()
    assert item.state == "done", item.last_error
    assert effects == {"k-1": 1}


def failing_hub(
    sqlite_url: str, fake_time: FakeTime, error: ToolbridgeError
) -> tuple[Hub, list[HubEvent], dict[str, int]]:
    """'svc.write' is queued once (refused), then fails in the worker with ``error``."""
    hub, effects = queue_hub(sqlite_url, fake_time)
    events: list[HubEvent] = []
    hub.events.subscribe(events.append)
    hub.wrap_connector("svc", lambda inner: _RaiseOnce(inner, error))
    return hub, events, effects


class _RaiseOnce:
    """The inner connector, except that its second call (the worker's) raises ``error``."""

    def __init__(self, inner: Connector, error: ToolbridgeError) -> None:
        self._inner, self._error, self.calls = inner, error, 0
        self.name = inner.name

    def tools(self) -> Sequence[Tool]:
        return self._inner.tools()

    def idempotency_key_carrier(self, tool: Tool) -> str | None:
        return key_carrier(self._inner, tool)

    async def invoke(self, tool: Tool, arguments: Mapping[str, Any], invocation: Invocation) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise self._error
        return await self._inner.invoke(tool, arguments, invocation)

    async def __aenter__(self) -> _RaiseOnce:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._inner.__aexit__(*exc_info)


TRANSIENT = [
    (RateLimited("the upstream asked for a pause", retry_after=900), "queued", 900),
    (CircuitOpen("breaker open", retry_after=60), "queued", 60),
    (UpstreamBusy("busy"), "queued", 0),
    (StorageError("database locked"), "queued", 0),
    (TokenRefreshFailed("token endpoint 503"), "queued", 0),
    (UpstreamStatusError("503", upstream_status=503), "queued", 0),
    (CredentialsError("reconnect needed"), "parked", 299),
    # the provider refuses the client (invalid_client: a secret changed there); failed for good, it was lost
    # though an operator fixing the secret makes it go through
    (ConfigurationError("the token endpoint refused the grant: invalid_client"), "parked", 299),
]


@pytest.mark.parametrize(("error", "state", "at_least"), TRANSIENT, ids=lambda v: getattr(v, "code", v))
async def test_transient_conditions_are_rescheduled_not_failed(
    sqlite_url: str, fake_time: FakeTime, error: ToolbridgeError, state: str, at_least: float
) -> None:
    """Regression: a long Retry-After (rate_limited), an open breaker or a re-auth failed it for good."""
    hub, events, _ = failing_hub(sqlite_url, fake_time, error)
    async with hub:
        await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
        await due_now(hub)
        started = dt.datetime.now(dt.UTC)
        await OutboxWorker(hub).run_once()
        (item,) = await hub.outbox.items()
    assert item.state == state and item.last_error is not None
    assert item.last_error["code"] == error.code
    assert item.next_attempt_at >= started + dt.timedelta(seconds=at_least)
    assert not events
    if not isinstance(error, UpstreamStatusError):
        assert item.attempts == 0  # it never reached the upstream: no attempt used up


@pytest.mark.parametrize(
    "error",
    [
        UpstreamStatusError("not found", upstream_status=404),
        PermissionDenied("no", missing_scope="svc.write"),
    ],
    ids=["upstream-404", "denied"],
)
async def test_what_can_never_succeed_fails_for_good_with_an_event(
    sqlite_url: str, fake_time: FakeTime, error: ToolbridgeError
) -> None:
    hub, events, _ = failing_hub(sqlite_url, fake_time, error)
    async with hub:
        await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
        await due_now(hub)
        await OutboxWorker(hub).run_once()
        (item,) = await hub.outbox.items()
        with pytest.raises(type(error)):  # a replay of the key now reports the failure
            await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
    assert item.state == "failed"
    (event,) = events
    assert isinstance(event, LogMessage) and event.level == "error"
    assert event.data["event"] == "outbox.failed" and event.data["outbox_id"] == item.id
    assert event.data["error"]["code"] == error.code


async def test_retries_that_reached_the_upstream_end_in_failed_with_an_event(
    sqlite_url: str, fake_time: FakeTime
) -> None:
    hub, events, _ = failing_hub(sqlite_url, fake_time, UpstreamStatusError("500", upstream_status=500))
    hub.outbox.max_attempts = 1
    async with hub:
        await hub.call(Principal.local(), "svc.write", {"op": "a"}, idempotency_key="k")
        await due_now(hub)
        await OutboxWorker(hub).run_once()
        (item,) = await hub.outbox.items()
    assert item.state == "failed" and len(events) == 1


class Clock:
    """Wall-clock time the test moves by hand (for leases)."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def test_an_item_taken_over_by_another_worker_is_not_applied_again(
    database_url: str, fake_time: FakeTime
) -> None:
    """Regression: a batch claimed under one lease and processed one by one outlived the lease; another
    worker re-claimed the rest and both applied them."""
    clock = Clock()
    hub, effects = queue_hub(database_url, fake_time)
    hub.outbox = Outbox(hub.database, lease=60, clock=clock, base_delay=0)
    hub.limits = Limits(call_timeout=30)  # batches of up to 2 items under a 60 s lease
    first, second = OutboxWorker(hub, batch=2), OutboxWorker(hub, batch=2)
    taken_over: list[int] = []
    late = clock.now + dt.timedelta(seconds=62)

    @hub.tool(connector="slow")
    async def slow(op: str, invocation: Invocation) -> str:
        effects[f"slow-{op}"] = effects.get(f"slow-{op}", 0) + 1
        if op == "first" and clock.now < late:  # it takes longer than the lease; another worker steps in
            clock.now = late
            async with anyio.create_task_group() as tg:  # its own task, as another process would be
                tg.start_soon(_append, taken_over, second.run_once)
        return op

    async with hub:
        for op in ("first", "second"):  # due one after the other: claimed in this order
            await hub.outbox.enqueue("local:local", "slow.slow", {"op": op}, None, UpstreamBusy("busy"))
            clock.now += dt.timedelta(milliseconds=1)
        clock.now += dt.timedelta(seconds=1)
        assert await first.run_once() == 2
        items = {i.arguments["op"]: i for i in await hub.outbox.items()}
    assert taken_over == [2]  # both leases had ended: the second worker took both
    assert effects["slow-second"] == 1  # ...and the first worker left 'second' to it
    assert items["second"].state == "done" and items["first"].state == "done"


class WatchedOutbox(Outbox):
    """The outbox, telling the test each time leases were renewed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renewed = anyio.Event()

    async def renew(self, items: Iterable[OutboxItem]) -> set[str]:
        held = await super().renew(items)
        self.renewed.set()
        self.renewed = anyio.Event()
        return held


async def test_the_heartbeat_keeps_a_long_items_lease(sqlite_url: str, fake_time: FakeTime) -> None:
    clock = Clock()
    hub, _ = queue_hub(sqlite_url, fake_time)
    outbox = hub.outbox = WatchedOutbox(hub.database, lease=0.3, clock=clock, base_delay=0)
    hub.limits = Limits(call_timeout=60)
    first, second = OutboxWorker(hub), OutboxWorker(hub)
    stolen: list[int] = []

    @hub.tool(connector="slow")
    async def slow(invocation: Invocation) -> str:
        for _ in range(4):  # four times 0.2 s of lease time pass: the lease lives on only if renewed
            renewed = outbox.renewed
            clock.now += dt.timedelta(seconds=0.2)
            with anyio.fail_after(patience(30)):
                await renewed.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_append, stolen, second.run_once)
        return "done"

    async with hub:
        await hub.outbox.enqueue("local:local", "slow.slow", {}, None, UpstreamBusy("busy"))
        clock.now += dt.timedelta(seconds=1)
        assert await first.run_once() == 1
        (item,) = await hub.outbox.items()
    assert stolen == [0, 0, 0, 0] and item.state == "done"


async def _append(into: list[int], count: Callable[[], Awaitable[int]]) -> None:
    into.append(await count())


async def test_a_stopped_worker_gives_back_the_items_it_had_not_tried(
    database_url: str, fake_time: FakeTime
) -> None:
    """A worker stopped (SIGTERM) mid-batch kept every claimed item's 120 s lease: writes it never tried
    waited two minutes for another worker. Now those are due again at once, their attempt not counted;
    the one in flight keeps its lease (it may have reached the upstream)."""
    clock = Clock()
    hub, _ = queue_hub(database_url, fake_time)
    hub.outbox = Outbox(hub.database, lease=120, clock=clock, base_delay=0)
    started = anyio.Event()

    @hub.tool(connector="slow")
    async def slow(op: str, invocation: Invocation) -> str:
        started.set()
        await anyio.sleep_forever()  # in flight when the worker stops
        return op

    async with hub:
        for op in ("first", "second", "third"):  # due one after the other: claimed in this order
            await hub.outbox.enqueue("local:local", "slow.slow", {"op": op}, None, UpstreamBusy("busy"))
            clock.now += dt.timedelta(milliseconds=1)
        clock.now += dt.timedelta(seconds=1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(OutboxWorker(hub, batch=3).run_once)
            with anyio.fail_after(patience(30)):
                await started.wait()
            tg.cancel_scope.cancel()
        items = {i.arguments["op"]: i for i in await hub.outbox.items()}
        again = await hub.outbox.claim_due(10, owner="next")
    assert items["first"].state == "running" and items["first"].lease_token is not None
    assert [(items[o].state, items[o].attempts, items[o].lease_token) for o in ("second", "third")] == [
        ("queued", 0, None),
        ("queued", 0, None),
    ]
    assert sorted(i.arguments["op"] for i in again) == ["second", "third"]  # due for the next worker now
