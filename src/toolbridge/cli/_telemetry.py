"""Trace export for ``toolbridge serve``, ``worker`` and ``mcp``: the one place that configures the
OpenTelemetry SDK (the library only makes spans through ``opentelemetry-api``; docs/observability.md).

Traces are exported when asked for: by ``telemetry.traces`` in toolbridge.yaml, or — without that section —
by the standard variables (``OTEL_TRACES_EXPORTER=otlp``, or an ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). They go to an OTLP/HTTP collector through a batch span
processor, flushed when the command ends. ``OTEL_SDK_DISABLED=true`` turns them off.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from toolbridge.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from toolbridge.settings import TelemetrySettings

__all__ = ["exported_traces"]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
INSTALL = "pip install 'toolbridge[otel]'"


@dataclass(frozen=True, slots=True)
class _Plan:
    why: str
    """What asked for traces (for the error when the SDK is missing)."""
    endpoint: str | None
    service_name: str
    sample_ratio: float | None


def exported_traces(
    settings: TelemetrySettings | None, environ: Mapping[str, str]
) -> AbstractContextManager[object]:
    """Set the global tracer provider now when traces are asked for; the context manager returned shuts
    it down (its last spans exported) on exit. Raises ``ConfigurationError`` when traces are asked for but
    the ``otel`` extra is not installed, or asked for in a way toolbridge does not export."""
    plan = _plan(settings, environ)
    if plan is None:
        return nullcontext()
    return _Export(_provider(plan))


def _plan(settings: TelemetrySettings | None, environ: Mapping[str, str]) -> _Plan | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    traces = settings.traces if settings is not None else None
    service = environ.get("OTEL_SERVICE_NAME") or "toolbridge"
    if traces is not None:
        if traces.exporter == "none":
            return None
        _check_protocol(environ)
        why = "telemetry.traces in the config file"
        return _Plan(why, traces.endpoint, traces.service_name or service, traces.sample_ratio)
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("", "none") and (exporter == "none" or not any(environ.get(v) for v in _ENDPOINTS)):
        return None
    if exporter not in ("", "otlp"):
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={exporter!r}: toolbridge exports traces with 'otlp' only",
            hint="set OTEL_TRACES_EXPORTER=otlp (OTLP over HTTP) or none",
        )
    _check_protocol(environ)
    asked = f"OTEL_TRACES_EXPORTER={exporter}" if exporter else next(v for v in _ENDPOINTS if environ.get(v))
    return _Plan(asked, None, service, None)


def _check_protocol(environ: Mapping[str, str]) -> None:
    for name in _PROTOCOLS:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigurationError(
                f"{name}={protocol!r}: toolbridge exports traces over OTLP/HTTP (http/protobuf) only",
                hint=f"unset {name}, or set it to http/protobuf and point the endpoint at the collector's "
                "HTTP port (4318)",
            )


def _provider(plan: _Plan) -> TracerProvider:
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        raise ConfigurationError(
            f"traces are asked for ({plan.why}) but the OpenTelemetry SDK is not installed",
            hint=f"install it with: {INSTALL}; or remove what asks for traces",
        ) from exc
    sampler = None if plan.sample_ratio is None else ParentBased(TraceIdRatioBased(plan.sample_ratio))
    provider = TracerProvider(resource=Resource.create({"service.name": plan.service_name}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=plan.endpoint)))
    trace.set_tracer_provider(provider)
    return provider


class _Export:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider

    def __enter__(self) -> _Export:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._provider.shutdown()  # the batch's last spans exported (bounded by the exporter's timeout)
