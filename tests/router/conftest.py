"""A store_file capability over two OpenAPI connectors, each in front of its own counting upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from toolbridge import Hub
from toolbridge.audit import AuditRecord
from toolbridge.credentials import Keyring, MasterKey, StaticKeys
from toolbridge.settings import parse_settings
from toolbridge.testing import Upstream, running_upstream


def _post(operation: str, path: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    body = {"type": "object", "properties": properties, "required": required}
    return {
        path: {
            "post": {
                "operationId": operation,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"200": {"description": "stored"}},
            }
        }
    }


def document(paths: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths}


PRIMARY = document(
    _post("putObject", "/objects", {"key": {"type": "string"}, "body": {"type": "string"}}, ["key", "body"])
)
BACKUP = document(
    _post(
        "uploadFile",
        "/files",
        {"name": {"type": "string"}, "data": {"type": "string"}, "folder": {"type": "string"}},
        ["name", "data"],
    )
)

CAPABILITY = """
capabilities:
  store_file:
    description: Store a file under a path.
    input:
      type: object
      properties:
        path: {type: string}
        content: {type: string}
      required: [path, content]
      additionalProperties: false
    choice: CHOICE
    providers:
      - tool: primary.put_object
        arguments: {key: "${input.path}", body: "${input.content}"}
      - tool: backup.upload_file
        arguments: {name: "${input.path}", data: "${input.content}", folder: fallback}
"""


def write_config(
    folder: Path,
    database_url: str,
    primary: Upstream | str,
    backup: Upstream | str,
    *,
    capabilities: str = CAPABILITY,
    choice: str = "ordered",
    primary_extra: str = "",
    agents: str = "agents:\n  bot: {scopes: ['capability.*']}\n",
) -> Path:
    """toolbridge.yaml: primary retries twice, its breaker opens after 3 calls of which half failed."""
    (folder / "primary.json").write_text(json.dumps(PRIMARY))
    (folder / "backup.json").write_text(json.dumps(BACKUP))
    url = lambda u: u.url if isinstance(u, Upstream) else u  # noqa: E731
    text = f"""
server: {{database: "{database_url}"}}
connectors:
  primary:
    kind: openapi
    spec: primary.json
    base_url: {url(primary)}
    resilience:
      retry: {{max_attempts: 3, base_delay: 0}}
      breaker: {{minimum_calls: 3, window: 10, failure_rate: 0.5, open_seconds: 600}}
{primary_extra}
  backup:
    kind: openapi
    spec: backup.json
    base_url: {url(backup)}
    resilience:
      retry: {{max_attempts: 1, base_delay: 0}}
{agents}
{capabilities.replace("CHOICE", choice)}
"""
    path = folder / "toolbridge.yaml"
    path.write_text(text)
    return path


def hub_from(path: Path) -> Hub:
    settings = parse_settings(path.read_text(), source=path)
    return Hub.from_settings(settings, keys=StaticKeys(Keyring(MasterKey.generate())))


async def rows_of(hub: Hub, request_id: str) -> list[AuditRecord]:
    """The audit rows one call left, oldest first."""
    return await hub.audit.tail(50, request_id=request_id)


def bodies(upstream: Upstream) -> list[dict[str, Any]]:
    return [json.loads(body) for _, _, _, body in upstream.requests]


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[Upstream, Upstream]]:
    async with running_upstream() as primary, running_upstream() as backup:
        yield primary, backup
