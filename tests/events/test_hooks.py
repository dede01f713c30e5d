"""POST /hooks/{source}: verified deliveries are stored once and acknowledged; refusals store nothing (W4)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from standardwebhooks.webhooks import Webhook

from toolbridge import Hub
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

from .conftest import GITHUB_SECRET, SW_SECRET, Env

pytestmark = pytest.mark.anyio


def github(
    body: bytes, delivery: str = "d-1", event: str = "push", secret: str = GITHUB_SECRET
) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={sig}",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
    }


PUSH = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "octo/hello"}}).encode()


async def stored(env: Env) -> int:
    return len(await env.service.log.tail(100))


async def test_a_verified_delivery_is_stored_and_acknowledged(env: Env) -> None:
    response = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    assert response.status_code == 200, response.text
    event = await env.service.log.get(response.json()["id"])
    assert event is not None
    assert (event.source, event.type, event.subject) == ("github", "push", "octo/hello")
    assert event.payload["ref"] == "refs/heads/main"


async def test_a_replay_is_acknowledged_as_duplicate_and_stored_once(env: Env) -> None:
    first = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    env.clock.now += 3 * 86400 - 60  # within the provider's retry horizon
    again = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    assert again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert await stored(env) == 1
    other = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, delivery="d-2"))
    assert other.json()["duplicate"] is False and await stored(env) == 2
    assert env.service.counters["github:duplicate"] == 1


async def test_dedupe_ends_after_its_horizon(env: Env) -> None:
    await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    env.clock.now += 3 * 86400 + 60
    await env.service.log.purge()
    again = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH))
    assert again.json()["duplicate"] is False


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-GitHub-Delivery": "d-9", "Content-Type": "application/json"}, 401),
        (github(PUSH, secret="another secret of 24 bytes!"), 401),
        (github(b"not json"), 400),
    ],
    ids=["unsigned", "badly-signed", "malformed"],
)
async def test_refused_deliveries_are_problems_counted_and_not_stored(
    env: Env, headers: dict[str, str], status: int
) -> None:
    body = b"not json" if status == 400 else PUSH
    response = await env.client.post("/hooks/github", content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status and response.json()["hint"]
    assert env.service.counters[f"github:rejected.{status}"] == 1
    assert await stored(env) == 0


async def test_stale_standard_webhook_is_refused(env: Env) -> None:
    body = '{"type": "invoice.paid", "data": {}}'
    when = dt.datetime.fromtimestamp(int(env.clock.now) - 301, dt.UTC)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(SW_SECRET).sign("msg_1", when, body),
    }
    response = await env.client.post("/hooks/standard", content=body, headers=headers)
    assert response.status_code == 401 and "beyond" in response.json()["detail"]
    assert re.search(r"is -30[12] s from now", response.json()["detail"])  # in the past: it read '+301 s'
    env.clock.now -= 2  # now 299 s old
    response = await env.client.post("/hooks/standard", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["duplicate"] is False


async def test_oversized_deliveries_get_413_declared_or_streamed(env: Env) -> None:
    big = b"{" + b" " * 4096 + b"}"
    response = await env.client.post("/hooks/github", content=big, headers=github(big))
    assert response.status_code == 413 and response.json()["limit"] == 2048

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for _ in range(5):
            yield b" " * 1000

    response = await env.client.post("/hooks/github", content=chunks(), headers=github(big))
    assert response.status_code == 413
    assert env.service.counters["github:rejected.413"] == 2
    assert await stored(env) == 0


async def test_unknown_source_is_404(env: Env) -> None:
    response = await env.client.post("/hooks/gitlab", content=PUSH, headers=github(PUSH))
    assert response.status_code == 404 and response.json()["hint"]


async def test_a_delivery_id_over_255_characters_is_refused_not_cut(env: Env) -> None:
    """Ids were cut to 255 characters for deduplication: two deliveries differing after that were one
    ("duplicate", the second event lost) on SQLite, and a 503 "database may be down" on PostgreSQL."""
    long_id = "d" * 256
    refused = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, delivery=long_id))
    assert refused.status_code == 400
    assert "256 characters long; at most 255" in refused.json()["detail"]
    assert await stored(env) == 0
    fits = await env.client.post("/hooks/github", content=PUSH, headers=github(PUSH, delivery="d" * 255))
    assert fits.status_code == 200 and await stored(env) == 1


async def test_a_previous_secret_that_cannot_be_read_is_left_out_not_a_500_for_every_delivery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/events.md's rotation: 'previous_secret: vault:…' kept after the old secret was deleted made
    every delivery a 500 configuration_error, correctly signed ones too (found by an outside newcomer
    probe). The current secret alone verifies; the one rotated out is logged as left out."""
    monkeypatch.setenv("TB_TEST_GITHUB_SECRET", GITHUB_SECRET)
    monkeypatch.delenv("TB_TEST_GITHUB_OLD", raising=False)
    config = f"""
server: {{database: "sqlite+aiosqlite:///{tmp_path}/tb.db"}}
hooks:
  github: {{verifier: github, secret: env:TB_TEST_GITHUB_SECRET, previous_secret: env:TB_TEST_GITHUB_OLD}}
"""
    hub = Hub.from_settings(parse_settings(config))
    async with (
        hub,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=create_app(hub, manage_hub=False)),
            base_url="http://testserver",
        ) as client,
    ):
        good = await client.post("/hooks/github", content=PUSH, headers=github(PUSH))
        forged = await client.post(
            "/hooks/github", content=PUSH, headers=github(PUSH, "d-2", secret="x" * 30)
        )
    assert good.status_code == 200, good.text
    assert forged.status_code == 401
    assert "previous secret env:TB_TEST_GITHUB_OLD is left out" in caplog.text
