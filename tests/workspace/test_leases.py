"""RELIABILITY.md H: leases with fencing numbers, checked by the storage layer on every write."""

from __future__ import annotations

import contextlib
import random

import anyio
import pytest

from tests._patience import patience
from toolbridge.errors import BadRequest, LeaseLost, Locked, PreconditionFailed
from toolbridge.workspace import Workspaces

from .conftest import ALICE, BOB, FakeClock

pytestmark = pytest.mark.anyio


async def test_k1_holder_paused_past_ttl_cannot_overwrite_newer_work(
    ws: Workspaces, clock: FakeClock
) -> None:
    a = await ws.lock(ALICE, "team", "/doc.txt", ttl=30)
    await ws.write(ALICE, "team", "/doc.txt", b"A1", lease=a.token)
    clock.advance(31)  # A is paused (SIGSTOP) past its TTL
    b = await ws.lock(BOB, "team", "/doc.txt", ttl=30)
    assert b.fence > a.fence
    await ws.write(BOB, "team", "/doc.txt", b"B", lease=b.token)
    with pytest.raises(Locked) as held:  # A resumes: B still holds the lease
        await ws.write(ALICE, "team", "/doc.txt", b"A2", lease=a.token)
    assert held.value.status == 423 and held.value.holder == BOB.id
    assert b.token not in str(held.value) and a.token not in str(held.value)
    await ws.unlock(BOB, "team", "/doc.txt", b.token)
    with pytest.raises(LeaseLost):  # B released: A's lease is still gone
        await ws.write(ALICE, "team", "/doc.txt", b"A3", lease=a.token)
    assert (await ws.read(ALICE, "team", "/doc.txt"))[1] == b"B"


async def test_k2_only_the_holder_with_its_token_releases_or_writes(ws: Workspaces) -> None:
    a = await ws.lock(ALICE, "team", "/k2.txt")
    with pytest.raises(Locked):
        await ws.unlock(BOB, "team", "/k2.txt", a.token)  # B has A's token: principal must match too
    with pytest.raises(Locked):
        await ws.unlock(BOB, "team", "/k2.txt", "lt_guess")
    with pytest.raises(Locked) as no_token:
        await ws.write(BOB, "team", "/k2.txt", b"x")
    assert no_token.value.status == 423 and no_token.value.holder == ALICE.id
    with pytest.raises(Locked):
        await ws.write(BOB, "team", "/k2.txt", b"x", lease=a.token)
    with pytest.raises(Locked):
        await ws.lock(BOB, "team", "/k2.txt")
    await ws.write(ALICE, "team", "/k2.txt", b"mine", lease=a.token)
    with pytest.raises(Locked):
        await ws.delete(BOB, "team", "/k2.txt")
    with pytest.raises(Locked):
        await ws.move(BOB, "team", "/k2.txt", "/elsewhere.txt")
    await ws.unlock(ALICE, "team", "/k2.txt", a.token)
    await ws.write(BOB, "team", "/k2.txt", b"free again")


async def test_k3_crash_expiry_and_heartbeats(ws: Workspaces, clock: FakeClock) -> None:
    first = await ws.lock(ALICE, "team", "/k3.txt")
    assert first.ttl == 120
    clock.advance(100)
    beat = await ws.heartbeat(ALICE, "team", "/k3.txt", first.token)  # before expiry: TTL restarts
    assert beat.expires_at == clock.now + 120 and beat.fence == first.fence
    clock.advance(100)
    with pytest.raises(Locked):
        await ws.lock(BOB, "team", "/k3.txt")  # 200 s after the first lock, still held thanks to the beat
    clock.advance(21)  # the holder "crashed": no more heartbeats
    with pytest.raises(LeaseLost):
        await ws.heartbeat(ALICE, "team", "/k3.txt", first.token)  # after expiry: must acquire again
    second = await ws.lock(BOB, "team", "/k3.txt")  # expired leases never block
    assert second.fence > first.fence
    page = await ws.changes(BOB, "team")
    assert [c.kind for c in page.changes] == ["lease.acquired", "lease.expired", "lease.acquired"]


async def test_ttl_limits(ws: Workspaces) -> None:
    with pytest.raises(BadRequest):
        await ws.lock(ALICE, "team", "/t", ttl=3601)
    assert (await ws.lock(ALICE, "team", "/t", ttl=3600)).ttl == 3600


async def test_k5_twins_share_the_lease_and_escapes_are_refused(ws: Workspaces) -> None:
    lease = await ws.lock(ALICE, "team", "/caf\u00e9.txt")
    with pytest.raises(Locked):
        await ws.write(BOB, "team", "/cafe\u0301.txt", b"twin")
    await ws.write(ALICE, "team", "cafe\u0301.txt", b"ok", lease=lease.token)
    for bad in ("../../etc/passwd", "/a/\x00", "/../team/x"):
        with pytest.raises(BadRequest):
            await ws.lock(ALICE, "team", bad)


async def test_fencing_numbers_only_grow_across_release(ws: Workspaces) -> None:
    fences = []
    for _ in range(5):
        lease = await ws.lock(ALICE, "team", "/f")
        fences.append(lease.fence)
        await ws.unlock(ALICE, "team", "/f", lease.token)
    assert fences == sorted(set(fences))


async def test_randomized_agents_never_lose_an_update(ws: Workspaces, clock: FakeClock) -> None:
    """5 agents × 1,000 lock/read/write cycles on one counter; some pause past their TTL (seeded)."""
    from toolbridge.policy import Principal
    from toolbridge.workspace import Role

    agents = [Principal.agent(f"agent{i}", ["workspace.*"]) for i in range(5)]
    await ws.ensure("race", members={a.id: Role.EDITOR for a in agents})
    await ws.write(agents[0], "race", "/counter", b"0")
    rng = random.Random(7)
    accepted: list[tuple[int, str]] = []  # (fence, agent) in commit order
    refused = 0

    async def cycle(agent: Principal) -> None:
        nonlocal refused
        try:
            lease = await ws.lock(agent, "race", "/counter", ttl=10)
        except Locked:
            clock.advance(rng.uniform(0, 3))  # time passes while the others work
            return
        _, data = await ws.read(agent, "race", "/counter")
        await anyio.lowlevel.checkpoint()
        if rng.random() < 0.05:
            clock.advance(11)  # this holder is paused past its TTL
        try:
            await ws.write(agent, "race", "/counter", str(int(data) + 1).encode(), lease=lease.token)
        except (Locked, LeaseLost):
            refused += 1
            return
        accepted.append((lease.fence, agent.id))
        if rng.random() < 0.9:
            with contextlib.suppress(Locked, LeaseLost):
                await ws.unlock(agent, "race", "/counter", lease.token)

    async def run(agent: Principal) -> None:
        for _ in range(1000):
            await cycle(agent)

    with anyio.fail_after(patience(600)):
        async with anyio.create_task_group() as tg:
            for agent in agents:
                tg.start_soon(run, agent)
    # the history, in commit order, from the durable change log (the tasks' own list is in finish order)
    history: list[int] = []
    cursor = 0
    while True:
        page = await ws.changes(agents[0], "race", cursor=cursor, limit=1000)
        if not page.changes:
            break
        cursor = page.cursor
        history += [int(c.detail["fence"]) for c in page.changes if c.kind == "file.updated"]  # type: ignore[call-overload]
    assert len(history) == len(accepted)
    assert history == sorted(history), "an accepted fencing number went down"
    assert len(history) == len(set(history)), "two writes were accepted under one lease"
    assert sorted(history) == sorted(f for f, _ in accepted)
    _, final = await ws.read(agents[0], "race", "/counter")
    assert int(final) == len(accepted), "an update was lost"
    assert refused > 0 and len(accepted) > 100


async def test_a_moved_file_starts_a_new_fencing_history(ws: Workspaces) -> None:
    lease = await ws.lock(ALICE, "team", "/old.txt")
    await ws.write(ALICE, "team", "/old.txt", b"1", lease=lease.token)
    await ws.unlock(ALICE, "team", "/old.txt", lease.token)
    await ws.move(ALICE, "team", "/old.txt", "/new.txt")
    await ws.write(BOB, "team", "/new.txt", b"2")  # no lease on the new path: anyone may write
    stale = await ws.lock(ALICE, "team", "/old.txt")
    with pytest.raises(PreconditionFailed):  # the file left: a write meant for it is refused
        await ws.write(ALICE, "team", "/old.txt", b"3", lease=stale.token, expected_version=1)
    assert (await ws.read(BOB, "team", "/new.txt"))[1] == b"2"
