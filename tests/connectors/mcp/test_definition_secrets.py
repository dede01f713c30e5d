"""An upstream that quotes what it was sent in its own definitions: no secret is pinned or served.

The upstream is a real process (tests/connectors/mcp/definitions_echo_server.py, the official SDK's
MCPServer over streamable HTTP) whose ``tools/list``, ``prompts/list``, ``resources/list`` and
``resources/templates/list`` quote the ``Authorization`` header (the connection's vault bearer token) and
an ``X-Static-Key`` header (an ``env:`` reference) in descriptions, titles and a schema property's
description and default. Before the fix both were pinned in the database in plain text and served by
``GET /v1/tools``, the search, MCP ``tools/list`` and ``toolbridge tools list``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from tests._leaks import assert_absent, database_files, encoded
from tests._patience import patience
from tests._serving import module_server
from toolbridge.assembly._hub import build_hub
from toolbridge.connectors.mcp import McpConnector
from toolbridge.credentials import Keyring, MasterKey, Material, Secret, StaticKeys
from toolbridge.settings import parse_settings
from toolbridge.surfaces.app import create_app

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[3]
BEARER = "vault-bearer-" + "b7" * 12
STATIC = "static-header-" + "k9" * 12
SETTINGS = """
server:
  database: {database}
connectors:
  remote:
    kind: mcp
    url: {url}
    approve: all-on-first-connect
    headers:
      X-Static-Key: env:TB_TEST_DEFINITION_KEY
    connections:
      scheme: bearer
agents:
  bot:
    scopes: ['*']
"""


@contextmanager
def echo_upstream() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with module_server("tests.connectors.mcp.definitions_echo_server", port) as url:
        yield url


async def test_secrets_quoted_in_an_upstreams_definitions_are_masked_before_pinning_and_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TB_TEST_DEFINITION_KEY", STATIC)
    database = f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    with echo_upstream() as url:
        hub = build_hub(
            parse_settings(SETTINGS.format(database=database, url=url)),
            keys=StaticKeys(Keyring(MasterKey.generate())),
        )
        remote = hub.connector("remote")
        assert isinstance(remote, McpConnector) and hub.credentials is not None
        web = create_app(hub)
        async with web.router.lifespan_context(web):
            await hub.credentials.add("remote", "default", Material(secret=Secret(BEARER)))
            with anyio.fail_after(patience(15)):
                while "remote.hello" not in hub.catalog or not remote.connected:  # noqa: ASYNC110
                    await anyio.sleep(0.02)  # the connector retries until a connection exists
            key = await hub.agents.create("bot")
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx2.AsyncClient(
                transport=httpx2.ASGITransport(app=web), base_url="http://tb"
            ) as http:
                answers = [
                    await http.get(path, headers=auth)
                    for path in ("/v1/tools/remote.hello", "/v1/tools?q=hello", "/v1/tools")
                ]
            tool = hub.catalog.get("remote.hello")
            extras = remote.extras
            served = json.dumps(
                {
                    "tool": [tool.description, tool.title, tool.input_schema],
                    "review": [r.definition for r in remote.review()],
                    "prompts": [p for _, p in extras.prompts.values()],
                    "resources": list(extras.resources.values()),
                    "templates": list(extras.templates),
                }
            )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert "[redacted]" in tool.description and "[redacted]" in str(tool.input_schema)
    assert "prompt auth=Bearer [redacted]" in served and "file auth=Bearer [redacted]" in served
    assert "files auth=Bearer [redacted] key=[redacted]" in served
    corpus = served + "".join(a.text for a in answers)
    assert_absent([BEARER, STATIC], corpus, await database_files(tmp_path), forms=encoded)
