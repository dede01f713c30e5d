"""Assembly (settings → objects): one registry of connector kinds, parts handed over explicitly."""

from __future__ import annotations

import json
import logging
import typing
from pathlib import Path

import pytest

from toolbridge.assembly._hub import build_hub
from toolbridge.assembly._kinds import KINDS
from toolbridge.credentials import Keyring, MasterKey, StaticKeys
from toolbridge.settings import ConnectorSettings, parse_settings


def test_every_connector_kind_of_the_config_file_has_a_builder() -> None:
    union = typing.get_args(typing.get_args(ConnectorSettings)[0])
    kinds = {typing.get_args(model.model_fields["kind"].annotation)[0] for model in union}
    assert set(KINDS) == kinds


def _shop(tmp_path: Path, key_header: str | None, extra: str = "") -> Path:
    parameters = [{"name": key_header, "in": "header", "schema": {"type": "string"}}] if key_header else []
    operation = {
        "operationId": "create_order",
        "parameters": parameters,
        "responses": {"201": {"description": "ok"}},
    }
    document = {
        "openapi": "3.0.3",
        "info": {"title": "Shop", "version": "1"},
        "paths": {"/orders": {"post": operation}},
    }
    (tmp_path / "shop.json").write_text(json.dumps(document))
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  shop:\n    kind: openapi\n    spec: shop.json\n    base_url: http://127.0.0.1:9\n"
        f"    resilience: {{on_exhausted: queue}}\n{extra}"
    )
    return config


@pytest.mark.parametrize(
    ("key_header", "extra", "warned"),
    [
        (None, "", False),  # the connector's default header, Idempotency-Key
        ("X-Idempotency-Key", "", False),
        (None, "    idempotency_header: none\n", True),
        ("X-Idempotency-Key", "    idempotency_header: none\n", True),
    ],
)
def test_queued_writes_that_send_no_key_upstream_are_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, key_header: str | None, extra: str, warned: bool
) -> None:
    """Such a queued write whose retry meets a reset, a timeout or a 5xx fails for good rather than risk
    applying it twice: the operator who set ``on_exhausted: queue`` should know (found by an outside
    chaos check, where three queued writes ended ``outcome_unknown``)."""
    config = _shop(tmp_path, key_header, extra)
    with caplog.at_level(logging.WARNING, logger="toolbridge.assembly"):
        build_hub(
            parse_settings(config.read_text(), source=config), keys=StaticKeys(Keyring(MasterKey.generate()))
        )
    messages = [r.getMessage() for r in caplog.records if r.name == "toolbridge.assembly"]
    if warned:
        assert messages == [
            "connector 'shop' queues writes after failures (on_exhausted: queue), but no idempotency key "
            "reaches its upstream for create_order: a queued write whose retry meets a reset, a timeout or a "
            "5xx fails for good (outcome_unknown) rather than risk applying it twice; set idempotency_header "
            "if the API honours one"
        ]
    else:
        assert messages == []
