"""Workspace fixtures: a real database (SQLite and PostgreSQL), a blob folder, a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from toolbridge.policy import Principal
from toolbridge.storage import Database
from toolbridge.workspace import LocalBlobStore, Role, Workspaces


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
