"""When ``toolbridge serve``/``worker``/``mcp`` export traces, and the errors when they cannot (the export
itself, to a real collector: tests/e2e/test_traces_export.py)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolbridge import ConfigurationError
from toolbridge.cli import app
from toolbridge.cli._telemetry import exported_traces
from toolbridge.settings import TelemetrySettings, TraceSettings, parse_settings

ASKED = TelemetrySettings(traces=TraceSettings(endpoint="http://127.0.0.1:4318/v1/traces"))


def test_without_the_extra_asking_for_traces_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"):
        monkeypatch.setitem(sys.modules, module, None)  # as if toolbridge[otel] were not installed
    config = tmp_path / "toolbridge.yaml"
    database = f"sqlite+aiosqlite:///{tmp_path / 'tb.db'}"
    config.write_text(f"server: {{database: '{database}'}}\ntelemetry:\n  traces: {{exporter: otlp}}\n")
    result = CliRunner().invoke(app, ["worker", "--once", "-c", str(config)], env={"NO_COLOR": "1"})
    assert result.exit_code == 1, result.output
    assert "traces are asked for (telemetry.traces in the config file)" in result.output
    assert "pip install 'toolbridge[otel]'" in result.output
    with pytest.raises(ConfigurationError, match=r"OTEL_EXPORTER_OTLP_ENDPOINT\) but"):
        exported_traces(TelemetrySettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})


@pytest.mark.parametrize(
    ("settings", "environ"),
    [
        (TelemetrySettings(), {}),
        (TelemetrySettings(), {"OTEL_SERVICE_NAME": "tb"}),  # naming a service asks for nothing
        (TelemetrySettings(), {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}),
        (TelemetrySettings(traces=TraceSettings(exporter="none")), {"OTEL_TRACES_EXPORTER": "otlp"}),
        (ASKED, {"OTEL_SDK_DISABLED": "true"}),
    ],
    ids=["nothing", "service-name-only", "env-none", "file-none", "sdk-disabled"],
)
def test_traces_are_exported_only_when_asked_for(
    settings: TelemetrySettings, environ: dict[str, str]
) -> None:
    assert isinstance(exported_traces(settings, environ), nullcontext)


@pytest.mark.parametrize(
    ("settings", "environ", "message"),
    [
        (TelemetrySettings(), {"OTEL_TRACES_EXPORTER": "zipkin"}, "with 'otlp' only"),
        (ASKED, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTLP/HTTP \\(http/protobuf\\) only"),
        (
            TelemetrySettings(),
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "only",
        ),
    ],
    ids=["other-exporter", "grpc", "grpc-for-traces"],
)
def test_an_export_toolbridge_cannot_make_is_refused(
    settings: TelemetrySettings, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        exported_traces(settings, environ)


def test_the_endpoint_must_be_an_http_url() -> None:
    text = "telemetry:\n  traces: {endpoint: 'grpc://collector:4317'}\n"
    with pytest.raises(ConfigurationError, match="must be an http\\(s\\) URL"):
        parse_settings(text)
