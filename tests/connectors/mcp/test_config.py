"""``kind: mcp`` in toolbridge.yaml: validated where it is written, secrets resolved at the edge."""

from __future__ import annotations

import pytest

from toolbridge.assembly._kinds import Parts
from toolbridge.assembly._mcp import mcp_connector
from toolbridge.connectors.mcp import HttpServer, McpConnector, StdioServer
from toolbridge.connectors.mcp._naming import catalog_names
from toolbridge.errors import ConfigFileError, ConfigurationError
from toolbridge.hub import Hub
from toolbridge.settings import McpConnectorSettings, parse_settings

CONFIG = """
connectors:
  files:
    kind: mcp
    command: npx
    args: ["-y", "some-server"]
    env:
      TOKEN: env:FILES_TOKEN
      MODE: plain
    read_only: ["read_*"]
  remote:
    kind: mcp
    url: http://127.0.0.1:9/mcp
    headers:
      Authorization: env:REMOTE_AUTH
    protocol: 2026-07-28
    approve: all-on-first-connect
agents:
  big:
    scopes: ["*"]
    tool_mode: search
"""


def test_settings_build_connectors_with_secrets_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(CONFIG)
    hub = Hub()
    environ = {"FILES_TOKEN": "s3cret", "REMOTE_AUTH": "Bearer abc"}
    files = settings.connectors["files"]
    remote = settings.connectors["remote"]
    assert isinstance(files, McpConnectorSettings) and isinstance(remote, McpConnectorSettings)
    stdio = mcp_connector("files", files, Parts(settings, hub.database), environ=environ)
    http = mcp_connector("remote", remote, Parts(settings, hub.database), environ=environ)
    assert isinstance(stdio, McpConnector) and isinstance(stdio.server, StdioServer)
    assert stdio.server.env == {"TOKEN": "s3cret", "MODE": "plain"}
    assert "s3cret" not in repr(stdio.server)
    assert isinstance(http.server, HttpServer) and http.server.headers == {"Authorization": "Bearer abc"}
    assert http.server.protocol == "2026-07-28"
    monkeypatch.setenv("FILES_TOKEN", "s3cret")
    monkeypatch.setenv("REMOTE_AUTH", "Bearer abc")
    assert Hub.from_settings(settings).tool_modes == {"big": "search"}


def test_missing_secret_names_the_variable() -> None:
    settings = parse_settings(CONFIG)
    files = settings.connectors["files"]
    assert isinstance(files, McpConnectorSettings)
    with pytest.raises(ConfigurationError, match="FILES_TOKEN, which is not set"):
        mcp_connector("files", files, Parts(settings, Hub().database), environ={})


def test_command_or_url_exactly_one() -> None:
    with pytest.raises(ConfigFileError, match="exactly one of 'command'"):
        parse_settings("connectors:\n  x:\n    kind: mcp\n")


def test_names_are_sanitized_unique_and_stable() -> None:
    upstream = ["getUser", "get user", "Get-User!", "x" * 80, "ok.tool"]
    names = catalog_names("gh", upstream)
    assert names == catalog_names("gh", list(reversed(upstream)))
    assert len(set(names.values())) == len(upstream)
    assert names["ok.tool"] == "gh.ok.tool"
    for name in names.values():
        assert len(name) <= 64 and name.startswith("gh.")
        assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789_.-" for c in name)
