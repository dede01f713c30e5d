"""One malformed document marks its connector failed; the rest of the hub starts and serves (item 5).

The malformed document raises where no rule of the loader foresaw it (today: a ``$ref`` whose URL does
not parse raises ``ValueError``); whatever it raises, the connector is built without tools, and its error
is in the log, in ``toolbridge tools list`` and in the connector's health.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx2
import pytest
from typer.testing import CliRunner

from tests._specs import OWN
from toolbridge import Hub, Principal
from toolbridge.cli import app
from toolbridge.surfaces.app import create_app

EXAMPLES = Path(__file__).parents[3] / "examples"
BROKEN = {
    "openapi": "3.0.3",
    "info": {"title": "broken", "version": "1"},
    "paths": {
        "/x": {
            "get": {
                "operationId": "x",
                "parameters": [{"$ref": "http://[::1/params.yaml#/p"}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "broken.json").write_text(json.dumps(BROKEN))
    path = tmp_path / "toolbridge.yaml"
    path.write_text(
        "server: {database: 'sqlite+aiosqlite:///:memory:'}\n"
        "connectors:\n"
        "  util:\n"
        "    kind: python\n"
        f"    module_path: {EXAMPLES}\n"
        "    tools: [{function: 'quickstart_tools:calculate', read_only: true}]\n"
        "  broken:\n"
        "    kind: openapi\n"
        "    spec: broken.json\n"
        "  incidents:\n"
        "    kind: openapi\n"
        f"    spec: {OWN / 'incidents.json'}\n"
        "    base_url: http://127.0.0.1:9\n"
        "    cache: false\n"
    )
    return path


@pytest.mark.anyio
async def test_a_malformed_document_leaves_the_hub_serving(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="toolbridge.connectors.openapi"):
        hub = Hub.from_file(config)
    assert any("'broken' has no tools" in r.getMessage() and r.exc_info for r in caplog.records)
    async with hub:
        assert (await hub.call(Principal.local(), "util.calculate", {"expression": "6*7"})).value == 42
        assert any(t.connector == "incidents" for t in hub.list_tools(Principal.local()))
        assert not any(t.connector == "broken" for t in hub.list_tools(Principal.local()))
        key = await hub.agents.create("ops", ["*"])
        transport = httpx2.ASGITransport(app=create_app(hub, manage_hub=False))
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/v1/health/connectors", headers={"Authorization": f"Bearer {key}"})
    rows = {row["connector"]: row for row in response.json()["connectors"]}
    assert rows["broken"]["upstream"].startswith("failed: the document could not be read (ValueError")
    assert rows["incidents"]["upstream"] is None


def test_tools_list_shows_the_failed_connector(config: Path) -> None:
    result = CliRunner().invoke(app, ["tools", "list", "-c", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "util.calculate" in result.output
    assert "failed: connector 'broken'" in result.output and "ValueError" in result.output
