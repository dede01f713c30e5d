"""What an agent is told about a write whose answer the upstream lost or botched, over real HTTP: a
``toolbridge serve`` process in front of a scripted upstream (found by an outside chaos check, where an
upstream process injected resets, 5xx after the effect and hangs into several thousand writes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests._patience import patience
from tests.e2e.test_serve import Server, serving
from toolbridge.testing import Reply, Upstream, running_upstream

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def document(key_header: str | None) -> dict[str, Any]:
    parameters = [{"name": key_header, "in": "header", "schema": {"type": "string"}}] if key_header else []
    create = {
        "operationId": "createOrder",
        "parameters": parameters,
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"201": {"description": "created"}},
    }
    info = {"title": "t", "version": "1"}
    return {"openapi": "3.0.3", "info": info, "paths": {"/orders": {"post": create}}}


def configure(folder: Path, upstream: Upstream, doc: dict[str, Any], extra: str = "") -> Path:
    (folder / "shop.json").write_text(json.dumps(doc))
    config = folder / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  shop:\n    kind: openapi\n    spec: shop.json\n"
        f"    base_url: {upstream.url}\n    allow_hosts: ['127.0.0.1:{upstream.port}']\n{extra}"
        "agents:\n  assistant: {scopes: ['*']}\n"
    )
    return config


async def create_order(server: Server, key: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {server.key}", **({"Idempotency-Key": key} if key else {})}
    async with httpx2.AsyncClient(trust_env=False, timeout=patience(30)) as http:
        return await http.post(
            f"{server.base}/v1/tools/shop.create_order/call",
            json={"arguments": {"body": {"item": "book"}}},
            headers=headers,
        )


async def queued_then_again(server: Server, key: str, state: str) -> httpx2.Response:
    """A keyed write that is queued (202); once its outbox item is in ``state`` (a bounded wait: the worker
    polls every second), the same call with the same key: its answer."""
    queued = await create_order(server, key=key)
    assert queued.status_code == 202, queued.text
    item = f"{server.base}{queued.headers['Location']}"
    headers = {"Authorization": f"Bearer {server.key}"}
    async with httpx2.AsyncClient(trust_env=False, timeout=patience(30)) as http:
        for _ in range(int(patience(30) / 0.1)):
            now = (await http.get(item, headers=headers)).json()["state"]
            if now in ("done", "failed"):
                assert now == state, f"the outbox item is {now!r}, not {state!r}"
                return await create_order(server, key=key)
            await anyio.sleep(0.1)
    raise AssertionError(f"the outbox item did not become {state!r}")


async def test_idempotency_header_none_wins_over_the_header_the_document_declares(tmp_path: Path) -> None:
    """The operator says the upstream ignores keys (its document declares Idempotency-Key anyway): a keyed
    write whose answer is lost must not be sent again with a key the upstream would not honour."""
    async with running_upstream() as upstream:
        upstream.then(Reply(reset=True))  # applied, then the answer is lost
        config = configure(tmp_path, upstream, document("Idempotency-Key"), "    idempotency_header: none\n")
        with serving(config, tmp_path) as server:
            answer = await create_order(server, key="order-1")
    assert answer.status_code == 504 and answer.json()["code"] == "outcome_unknown", answer.text
    assert len(upstream.requests) == 1, "the write was sent twice to an upstream that ignores keys"
    assert "idempotency-key" not in upstream.requests[0][2]


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_write_failed_with_5xx_is_not_to_be_called_again_blindly(tmp_path: Path, status: int) -> None:
    """A 500/502/504 may come after the upstream applied the write: the agent is told to check first, not
    to "try again later" (which applied it twice when agents followed it)."""
    async with running_upstream() as upstream:
        upstream.then(Reply(status, body={"error": "failed after commit"}))
        with serving(configure(tmp_path, upstream, document(None)), tmp_path) as server:
            answer = await create_order(server)
    problem = answer.json()
    assert problem["upstream_status"] == status, answer.text
    assert "try again later" not in problem["hint"], problem["hint"]
    assert "may have applied it" in problem["hint"] and "check" in problem["hint"], problem["hint"]
    assert len(upstream.requests) == 1


async def test_a_callers_key_that_starts_with_outbox_gets_the_queued_writes_final_outcome(
    tmp_path: Path,
) -> None:
    """The worker stored the final outcome only for keys not starting with ``outbox-`` (its own keys are
    ``outbox-<id>``): a caller who chose such a key was answered "queued" for the key's 24 hours."""
    async with running_upstream() as upstream:
        upstream.then(Reply(503), Reply(201, body={"id": "o-1"}))  # refused at first: queued; then applied
        extra = "    resilience: {retry: {max_attempts: 1}, on_exhausted: queue}\noutbox: {base_delay: 0}\n"
        config = configure(tmp_path, upstream, document("Idempotency-Key"), extra)
        with serving(config, tmp_path) as server:
            replay = await queued_then_again(server, "outbox-mine", "done")
    assert replay.status_code == 200 and replay.json()["result"] == {"id": "o-1"}, replay.text
    assert upstream.effect_count == 1


async def test_a_queued_keyed_write_whose_retries_ran_out_runs_again_with_its_key(tmp_path: Path) -> None:
    """A keyed write queued after a 500 failed for good when the worker's attempts ran out on more 500s;
    the upstream may have applied it. Its key used to answer that failure with "a new key runs it"
    (applied twice); now the same key runs it again, and the upstream applies it once."""
    async with running_upstream() as upstream:
        upstream.then(Reply(500), Reply(500), Reply(500), Reply(201, body={"id": "o-2"}))
        extra = "    resilience: {retry: {max_attempts: 1}, on_exhausted: queue}\n"
        config = configure(tmp_path, upstream, document("Idempotency-Key"), extra)
        with config.open("a") as file:
            file.write("outbox: {base_delay: 0, max_attempts: 2}\n")
        with serving(config, tmp_path) as server:
            again = await queued_then_again(server, "order-9", "failed")
    assert again.status_code == 200 and again.json()["result"] == {"id": "o-2"}, again.text
    assert [h.get("idempotency-key") for _, _, h, _ in upstream.requests] == ["order-9"] * 4


async def test_a_queued_write_whose_key_does_not_travel_is_not_sent_again_after_a_500(tmp_path: Path) -> None:
    """A write queued after a 503 (not processed) met a 500 in the worker, which may come after the
    upstream applied it; with no key the upstream honours, the worker used to send it again (applied
    twice in a chaos run). It fails for good instead, and its key answers that it may have been applied."""
    async with running_upstream() as upstream:
        upstream.then(Reply(503), Reply(500))
        extra = (
            "    idempotency_header: none\n    resilience: {retry: {max_attempts: 1}, on_exhausted: queue}\n"
        )
        config = configure(tmp_path, upstream, document(None), extra + "outbox: {base_delay: 0}\n")
        with serving(config, tmp_path) as server:
            again = await queued_then_again(server, "order-7", "failed")
    assert len(upstream.requests) == 2, "the write was sent again after a 500"
    assert again.json()["upstream_status"] == 500 and "may have applied it" in again.json()["hint"], (
        again.text
    )


async def test_a_keyed_write_that_ran_out_of_retries_is_told_to_keep_its_key(tmp_path: Path) -> None:
    """Retries of a keyed write (its key reaches the upstream) ran out on 500s, which may come after the
    effect: the hint said only "try again later", and an agent that took a new key applied it twice."""
    async with running_upstream() as upstream:
        upstream.then(Reply(500), Reply(500))
        extra = "    resilience: {retry: {max_attempts: 2, base_delay: 0.01}}\n"
        config = configure(tmp_path, upstream, document("Idempotency-Key"), extra)
        with serving(config, tmp_path) as server:
            failed = await create_order(server, key="order-5")
            again = await create_order(server, key="order-5")
    assert "call again with the same idempotency key" in failed.json()["hint"], failed.text
    assert again.status_code == 200 and len(upstream.requests) == 3, again.text
