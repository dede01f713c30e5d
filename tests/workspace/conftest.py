"""Workspace fixtures: a real database (SQLite and PostgreSQL), a blob folder, a clock the test moves,
and ``env``: a hub with a workspace served over ASGI and two agents with keys."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from toolbridge import Hub
from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.surfaces.app import create_app
from toolbridge.workspace import LocalBlobStore, Role, WorkspaceConnector, Workspaces


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


ALICE = Principal.agent("alice", ["workspace.*"])
BOB = Principal.agent("bob", ["workspace.*"])
VIEWER = Principal.agent("vera", ["workspace.*"])
MALLORY = Principal.agent("mallory", ["workspace.*"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ws(database_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Workspaces]:
    async with Database(database_url) as db:
        service = Workspaces(db, LocalBlobStore(tmp_path / "blobs", fsync=False), clock=clock)
        members = {ALICE.id: Role.EDITOR, BOB.id: Role.EDITOR, VIEWER.id: Role.VIEWER}
        await service.ensure("team", members=members)
        await service.ensure("other", members={MALLORY.id: Role.OWNER})
        yield service


@dataclass
class Env:
    hub: Hub
    client: httpx2.AsyncClient
    auth: dict[str, str]
    other: dict[str, str]
    connector: WorkspaceConnector
    clock: FakeClock


@pytest.fixture
async def env(database_url: str, tmp_path: Path) -> AsyncIterator[Env]:
    hub = Hub(database=database_url)
    clock = FakeClock(time.time())
    connector = WorkspaceConnector(
        database=hub.database,
        blobs=LocalBlobStore(tmp_path / "blobs", fsync=False),
        members={"agent:assistant": Role.EDITOR},
        inline_bytes=100,
        signing_secret=b"k" * 32,
        public_url="http://testserver",
        clock=clock,
    )
    hub.add_connector(connector)
    async with hub:
        key = await hub.agents.create("assistant", ["workspace.*"])
        other = await hub.agents.create("stranger", ["workspace.*"])
        app = create_app(hub, manage_hub=False)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Env(
                hub,
                client,
                {"Authorization": f"Bearer {key}"},
                {"Authorization": f"Bearer {other}"},
                connector,
                clock,
            )
