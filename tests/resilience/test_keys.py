"""Keys travel: an OpenAPI connector sends the call's idempotency key upstream, so a retry after a lost
answer is applied once; where it does not, a keyed write is not retried once it may have arrived."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from tests.connectors.openapi.conftest import ingested, openapi
from tests.resilience.conftest import FakeTime
from toolbridge import Hub, Principal
from toolbridge.assembly._openapi import openapi_connector
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.errors import OutcomeUnknown
from toolbridge.resilience import Resilience, ResiliencePolicy, RetryPolicy
from toolbridge.settings import OpenAPIConnectorSettings, Settings
from toolbridge.testing import Reply, Upstream

pytestmark = pytest.mark.anyio
POLICY = ResiliencePolicy(retry=RetryPolicy(max_attempts=3, base_delay=0.01))


def document(key_header: str | None = None) -> dict[str, Any]:
    parameters = [{"name": key_header, "in": "header", "schema": {"type": "string"}}] if key_header else []
    create = {
        "operationId": "createThing",
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "properties": {"name": {}}}}},
        },
        "responses": {"200": {"description": "ok"}},
    }
    return openapi({"/things": {"post": create}})


def keyed_hub(upstream: Upstream, fake_time: FakeTime, doc: dict[str, Any], **kwargs: Any) -> Hub:
    resilience = Resilience(clock=fake_time.clock, sleep=fake_time.sleep, rng=random.Random(3))
    hub = Hub(resilience=resilience)
    connector = OpenAPIConnector("api", ingested(doc), base_url=upstream.url, **kwargs)
    hub.add_connector(connector, policy=POLICY)
    return hub


def sent_keys(upstream: Upstream, header: str = "idempotency-key") -> list[str | None]:
    return [headers.get(header) for _, _, headers, _ in upstream.requests]


async def test_a_keyed_write_reset_after_its_effect_is_retried_with_its_key_and_applied_once(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(reset=True))  # applied upstream, then the answer is lost
    hub = keyed_hub(upstream, fake_time, document())
    async with hub:
        result = await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="op-1")
    assert result.value == {"ok": True}
    assert sent_keys(upstream) == ["op-1", "op-1"]  # the same key on the retry
    assert upstream.effect_count == 1  # the upstream deduplicated it


async def test_the_header_the_document_declares_carries_the_key(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(reset=True))
    hub = keyed_hub(upstream, fake_time, document("X-Idempotency-Key"), idempotency_header="Other")
    async with hub:
        await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="op-2")
        carrier = hub.key_carrier(hub.catalog.get("api.create_thing"))
    assert sent_keys(upstream, "x-idempotency-key") == ["op-2", "op-2"]
    assert sent_keys(upstream, "other") == [None, None]
    assert carrier == "header X-Idempotency-Key"


async def test_without_key_forwarding_a_keyed_write_is_not_retried_once_sent(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(reset=True))
    hub = keyed_hub(upstream, fake_time, document(), idempotency_header=None)
    async with hub:
        with pytest.raises(OutcomeUnknown):
            await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="op-3")
        assert hub.key_carrier(hub.catalog.get("api.create_thing")) is None
    assert len(upstream.requests) == 1 and sent_keys(upstream) == [None]


async def test_a_keyed_write_refused_before_sending_is_still_retried(
    upstream: Upstream, fake_time: FakeTime
) -> None:
    upstream.then(Reply(503), Reply(201))  # 503: not processed, safe to retry even without a key
    hub = keyed_hub(upstream, fake_time, document(), idempotency_header=None)
    async with hub:
        await hub.call(Principal.local(), "api.create_thing", {"name": "a"}, idempotency_key="op-4")
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("configured", [None, "X-Key"])
def test_forwarding_keys_to_a_document_without_a_key_header_warns_at_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, configured: str | None
) -> None:
    import json

    (tmp_path / "api.json").write_text(json.dumps(document()))
    fields: dict[str, Any] = {"kind": "openapi", "spec": "api.json", "base_url": "http://127.0.0.1:9"}
    if configured:
        fields["idempotency_header"] = configured
    config = OpenAPIConnectorSettings(**fields)
    with caplog.at_level(logging.WARNING, logger="toolbridge.connectors.openapi"):
        openapi_connector("api", config, Settings(source=tmp_path / "toolbridge.yaml"))
    (warning,) = [r.getMessage() for r in caplog.records if "idempotency" in r.getMessage()]
    assert f"header {configured or 'Idempotency-Key'}" in warning and "idempotency_header: none" in warning


def test_no_warning_when_keys_are_off_or_the_document_declares_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    (tmp_path / "plain.json").write_text(json.dumps(document()))
    (tmp_path / "keyed.json").write_text(json.dumps(document("Idempotency-Key")))
    reads = {"operationId": "listThings", "responses": {"200": {"description": "ok"}}}
    (tmp_path / "reads.json").write_text(json.dumps(openapi({"/things": {"get": reads}})))
    cases = (("plain.json", "none"), ("keyed.json", "Idempotency-Key"), ("reads.json", "Idempotency-Key"))
    with caplog.at_level(logging.WARNING, logger="toolbridge.connectors.openapi"):
        for spec, header in cases:  # off; declared; only reads (no key is ever sent: it printed anyway)
            config = OpenAPIConnectorSettings(kind="openapi", spec=spec, idempotency_header=header)
            openapi_connector("api", config, Settings(source=tmp_path / "toolbridge.yaml"))
    assert not [r for r in caplog.records if "idempotency" in r.getMessage()]


@pytest.mark.parametrize(
    ("header", "says"),
    [("Idempotency-Key", "sent upstream in header Idempotency-Key"), ("none", "not sent upstream")],
)
def test_tools_show_says_how_the_key_travels(in_tmp_dir: Path, header: str, says: str) -> None:
    import json

    from typer.testing import CliRunner

    from toolbridge.cli import app

    (in_tmp_dir / "api.json").write_text(json.dumps(document()))
    (in_tmp_dir / "toolbridge.yaml").write_text(
        "connectors:\n  api:\n    kind: openapi\n    spec: api.json\n    base_url: http://127.0.0.1:9\n"
        f"    idempotency_header: {header}\n"
    )
    result = CliRunner().invoke(app, ["tools", "show", "api.create_thing", "-c", "toolbridge.yaml"])
    assert result.exit_code == 0, result.output
    assert says in json.loads(result.output)["idempotency_key"]
