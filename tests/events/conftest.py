"""A hub with webhook sources and subscriptions, served over ASGI, and a clock the tests move."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from toolbridge import Hub
from toolbridge.events import EventService
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

GITHUB_SECRET = "gh-secret-of-at-least-24-bytes"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

CONFIG = """
hooks:
  github:
    verifier: github
    secret: env:TB_TEST_GITHUB_SECRET
    max_body_bytes: 2048
  standard:
    verifier: standard
    secret: env:TB_TEST_SW_SECRET
subscriptions:
  pushes:
    source: github
    type: push
    principals: [watcher]
"""


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    hub: Hub
    client: httpx2.AsyncClient
    service: EventService
    clock: Clock


@pytest.fixture
async def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.setenv("TB_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.setenv("TB_TEST_SW_SECRET", SW_SECRET)
    settings = parse_settings(CONFIG, source=tmp_path / "toolbridge.yaml")
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"database": database_url})}
    )
    hub = Hub.from_settings(settings)
    service = hub.event_service
    assert service is not None
    clock = Clock()
    service.log.clock = clock
    async with hub:
        app = create_app(hub, manage_hub=False)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            yield Env(hub, c, service, clock)
