"""``signing_secret`` in toolbridge.yaml: a reference is read, as for every other secret in the file; it was
taken as the key itself (found by an outside newcomer probe): ``env:WS_SIGN`` was "shorter than 24
characters" although the variable held a long key, and a long reference to an unset variable signed
every URL with a string anyone can read in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge import Hub
from toolbridge.errors import ConfigurationError
from toolbridge.settings import parse_settings

CONFIG = """
server: {{database: "sqlite+aiosqlite:///{db}"}}
connectors:
  shared:
    kind: workspace
    workspace: team
    signing_secret: {secret}
"""


def build(tmp_path: Path, secret: str) -> Hub:
    return Hub.from_settings(parse_settings(CONFIG.format(db=tmp_path / "tb.db", secret=secret)))


def test_an_env_reference_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TB_TEST_WS_SIGN", "k" * 32)
    assert "shared.read" in build(tmp_path, "env:TB_TEST_WS_SIGN").catalog
    monkeypatch.setenv("TB_TEST_WS_SIGN", "short")
    with pytest.raises(ConfigurationError, match="shorter than 24 characters"):
        build(tmp_path, "env:TB_TEST_WS_SIGN")


def test_a_reference_to_an_unset_variable_is_refused_not_used_as_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TB_TEST_WS_SIGN_UNSET_VARIABLE_NAME_LONG", raising=False)
    with pytest.raises(ConfigurationError, match="environment variable that is not set"):
        build(tmp_path, "env:TB_TEST_WS_SIGN_UNSET_VARIABLE_NAME_LONG")
