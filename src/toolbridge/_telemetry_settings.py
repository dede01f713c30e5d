"""The ``telemetry:`` section of toolbridge.yaml (pydantic, wire edge; docs/observability.md). Re-exported
by :mod:`toolbridge.settings`; read by the CLI (``toolbridge.cli._telemetry``), which alone configures the
OpenTelemetry SDK."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TelemetrySettings", "TraceSettings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceSettings(_Model):
    """Where ``toolbridge serve``, ``worker`` and ``mcp`` export their trace spans (OTLP over HTTP)."""

    exporter: Literal["otlp", "none"] = "otlp"
    """``none`` turns traces off even when the ``OTEL_*`` variables ask for them."""
    endpoint: str | None = None
    """The collector's OTLP/HTTP traces URL (default: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else ``http://localhost:4318/v1/traces``)."""
    service_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """``service.name`` of the spans (default: ``OTEL_SERVICE_NAME``, else ``toolbridge``)."""
    sample_ratio: Annotated[float, Field(ge=0, le=1)] | None = None
    """The share of new traces recorded; a caller's ``traceparent`` decides for its own (default:
    ``OTEL_TRACES_SAMPLER``, else every trace)."""

    @pydantic.field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"telemetry.traces.endpoint must be an http(s) URL such as "
                f"http://127.0.0.1:4318/v1/traces, not {value[:80]!r}"
            )
        return value


class TelemetrySettings(_Model):
    traces: TraceSettings | None = None
    """Trace export; None: only when the ``OTEL_*`` variables ask for it (docs/observability.md)."""
