"""``--log-level`` / ``TOOLBRIDGE_LOG_LEVEL``: how much the process logs, on stderr."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from toolbridge.cli import app
from toolbridge.cli._logging import configure_logging


@pytest.fixture(autouse=True)
def default_level() -> Iterator[None]:
    yield
    configure_logging("warning")  # what the next test expects of the loggers


def test_debug_writes_each_record_with_its_time_level_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG")
    logging.getLogger("toolbridge.connectors.mcp").debug("server said %s", "hello")
    logging.getLogger("httpx2").info("HTTP Request: GET http://127.0.0.1/ 200")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")  # other libraries stay at their default
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "DEBUG toolbridge.connectors.mcp: server said hello",
        "INFO httpx2: HTTP Request: GET http://127.0.0.1/ 200",
    ]


def test_warning_restores_the_default_and_error_silences_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    configure_logging("warning")
    logger = logging.getLogger("toolbridge.assembly")
    assert logger.getEffectiveLevel() == logging.getLogger().getEffectiveLevel()
    assert logging.getLogger("toolbridge").propagate and not logging.getLogger("toolbridge").handlers
    configure_logging("error")
    assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    with pytest.raises(ValueError, match="use one of debug, info, warning, error"):
        configure_logging("verbose")


def words(text: str) -> str:
    """The text of rich's error panel without its frame and line breaks."""
    return " ".join(text.replace("│", " ").split())


def test_the_option_and_its_variable_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--log-level", "loud", "tools", "list"])
    assert result.exit_code == 2
    assert "'loud' is not a log level: use one of debug, info, warning, error" in words(result.output)
    monkeypatch.setenv("TOOLBRIDGE_LOG_LEVEL", "chatty")
    result = runner.invoke(app, ["tools", "list"])
    assert result.exit_code == 2 and "TOOLBRIDGE_LOG_LEVEL" in words(result.output)
    monkeypatch.setenv("TOOLBRIDGE_LOG_LEVEL", "Info")
    assert runner.invoke(app, ["init", "--help"]).exit_code == 0
    assert logging.getLogger("toolbridge").getEffectiveLevel() == logging.INFO
