"""Capabilities built from Python: the order providers are tried in, and when an ambiguous failure may
fail over. Providers are in-process tools of the same hub (no mocks of our own code)."""

from __future__ import annotations

import random
from collections import Counter

import anyio
import pytest

from tests._patience import patience
from toolbridge import Hub, Principal
from toolbridge.errors import UpstreamStatusError
from toolbridge.hub import Limits
from toolbridge.resilience import ResiliencePolicy, RetryPolicy
from toolbridge.router import ROUTER_POLICY, ArgumentMapping, Capability, Choice, Provider, Router

pytestmark = pytest.mark.anyio
BOT = Principal.agent("bot", ["capability.*"])
INPUT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def notifier(
    choice: Choice, *, weights: tuple[float, float] = (1.0, 1.0), seed: int = 5
) -> tuple[Hub, Router, Counter[str]]:
    hub = Hub()
    served: Counter[str] = Counter()

    @hub.tool(connector="pager", idempotent=True)
    async def page(message: str) -> str:
        served["pager"] += 1
        if message == "fail":
            raise UpstreamStatusError("pager is broken", upstream_status=500)
        return "paged"

    @hub.tool(connector="chat")
    async def post(channel: str, body: str) -> str:
        served["chat"] += 1
        if body == "fail":
            raise UpstreamStatusError("chat is broken", upstream_status=500)
        return f"posted to {channel}"

    capability = Capability(
        name="notify",
        description="Tell the on-call.",
        input_schema=INPUT,
        providers=(
            Provider("pager.page", ArgumentMapping({"message": "${input.text}"}), weights[0]),
            Provider(
                "chat.post", ArgumentMapping({"channel": "#oncall", "body": "${input.text}"}), weights[1]
            ),
        ),
        choice=choice,
    )
    for connector in ("pager", "chat"):  # two attempts each, no backoff wait
        hub.resilience.configure(connector, ResiliencePolicy(retry=RetryPolicy(max_attempts=2, base_delay=0)))
    router = Router(hub, [capability], rng=random.Random(seed))
    hub.add_connector(router, policy=ROUTER_POLICY)
    return hub, router, served


async def test_round_robin_takes_turns() -> None:
    hub, _, served = notifier("round_robin")
    async with hub:
        results = [(await hub.call(BOT, "capability.notify", {"text": "hi"})).value for _ in range(4)]
    assert results == ["paged", "posted to #oncall", "paged", "posted to #oncall"]
    assert served == {"pager": 2, "chat": 2}


def test_weighted_choice_follows_the_weights() -> None:
    _, router, _ = notifier("weighted", weights=(3.0, 1.0))
    firsts = Counter(router.order("capability.notify")[0].tool for _ in range(4000))
    assert 0.72 < firsts["pager.page"] / 4000 < 0.78
    assert all(len(router.order("capability.notify")) == 2 for _ in range(10)), "the others stay fallbacks"


async def test_ordered_tries_the_listed_order_and_an_idempotent_provider_fails_over_on_500() -> None:
    hub, _, served = notifier("ordered")
    async with hub:
        assert (await hub.call(BOT, "capability.notify", {"text": "hi"})).value == "paged"
        # 'fail' breaks the pager (idempotent: retried, then fails over) and then the chat (a write
        # that may have happened: reported, not retried)
        with pytest.raises(UpstreamStatusError, match="chat is broken"):
            await hub.call(BOT, "capability.notify", {"text": "fail"})
    assert served == {"pager": 1 + 2, "chat": 1}


async def test_a_write_that_may_have_happened_is_not_repeated_elsewhere() -> None:
    hub = Hub()
    calls: list[str] = []

    @hub.tool(connector="a")
    async def send(text: str) -> str:
        calls.append("a")
        raise UpstreamStatusError("a answered 502 after reading the request", upstream_status=502)

    @hub.tool(connector="b")
    async def send_too(text: str) -> str:
        calls.append("b")
        return "sent"

    providers = (Provider("a.send"), Provider("b.send_too"))
    hub.add_connector(Router(hub, [Capability("send", "Send.", INPUT, providers)]), policy=ROUTER_POLICY)
    async with hub:
        with pytest.raises(UpstreamStatusError):
            await hub.call(BOT, "capability.send", {"text": "x"})
    assert calls == ["a"]


async def test_a_capability_with_a_key_gives_each_provider_its_own_key() -> None:
    hub, _, _ = notifier("ordered")
    async with hub:
        first = await hub.call(BOT, "capability.notify", {"text": "hi"}, idempotency_key="k-1")
        again = await hub.call(BOT, "capability.notify", {"text": "hi"}, idempotency_key="k-1")
    assert first.value == again.value == "paged" and again.replayed


async def test_a_read_provider_that_hangs_is_skipped_within_the_capabilitys_deadline() -> None:
    """Each provider had the whole call_timeout, inside the capability's own: a hung first provider was never
    skipped (the capability timed out first) and its audit row was lost (found by an outside probe)."""
    hub = Hub(limits=Limits(call_timeout=patience(1.0)))  # the second provider's half must suffice under load
    released = anyio.Event()

    @hub.tool(connector="slow", read_only=True)
    async def find(q: str) -> str:
        await released.wait()  # hangs until the test ends
        return "late"

    @hub.tool(connector="fast", read_only=True)
    async def lookup(q: str) -> str:
        return f"found {q}"

    providers = (
        Provider("slow.find", ArgumentMapping({"q": "${input.text}"})),
        Provider("fast.lookup", ArgumentMapping({"q": "${input.text}"})),
    )
    hub.add_connector(Router(hub, [Capability("find", "Find.", INPUT, providers)]), policy=ROUTER_POLICY)
    async with hub:
        result = await hub.call(BOT, "capability.find", {"text": "x"}, request_id="r-hang")
        released.set()
        await hub.audit.flush()
        rows = [r.entry for r in await hub.audit.tail(10) if r.entry.request_id == "r-hang"]
    assert result.value == "found x"
    assert [(r.tool, r.outcome, r.error_code) for r in rows] == [
        ("slow.find", "error", "upstream_timeout"),
        ("fast.lookup", "ok", None),
        ("capability.find", "ok", None),
    ]


def test_text_around_a_missing_input_leaves_the_argument_out() -> None:
    """'ops-${input.team}' without 'team' was sent as 'ops-null' (found by an outside probe)."""
    mapping = ArgumentMapping({"channel": "ops-${input.team}", "text": "${input.text}", "n": "#${input.n}"})
    assert mapping.apply({"text": "hi"}) == {"text": "hi"}
    assert mapping.apply({"text": "hi", "team": "db", "n": 3}) == {
        "channel": "ops-db",
        "text": "hi",
        "n": "#3",
    }


async def test_a_providers_cut_result_is_passed_on_once_with_its_full_size() -> None:
    """Cut by the provider's call, then again by the capability's: three markers, and the size of the cut
    text instead of the result's (found by an outside probe)."""
    hub = Hub(limits=Limits(max_result_bytes=1000))

    @hub.tool(connector="big", read_only=True)
    async def dump(text: str) -> str:
        return text * 5000

    providers = (Provider("big.dump"),)
    hub.add_connector(Router(hub, [Capability("dump", "Dump.", INPUT, providers)]), policy=ROUTER_POLICY)
    async with hub:
        result = await hub.call(BOT, "capability.dump", {"text": "x"})
    assert result.truncated and result.size == 5000 and result.value is None
    assert result.text.count("[toolbridge: result truncated: showing 1,000 of 5,000 bytes") == 2
