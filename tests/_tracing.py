"""An OpenTelemetry SDK tracer provider for one test, with its spans kept in memory.

``with collected_spans() as exporter:`` makes an SDK ``TracerProvider`` export every span ended in the
block to ``exporter`` (``get_finished_spans()``). The global tracer provider can be set once per process,
and a library's tracer (toolbridge's too) keeps the provider it found; so the global one, set on first
use, is a switch: while a block runs, its tracers make the block's SDK spans, and outside every block
they make none at all (the API's invalid span: no span recorded, no ``traceparent`` sent), as without
a provider — other tests run as they would without tracing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import Attributes

__all__ = ["collected_spans", "named"]


class _Switch(trace.TracerProvider):
    """The global provider of the test process: the current block's SDK provider, or none."""

    def __init__(self) -> None:
        self.current: TracerProvider | None = None

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _SwitchedTracer(self, instrumenting_module_name)


class _SwitchedTracer(trace.Tracer):
    def __init__(self, switch: _Switch, name: str) -> None:
        self._switch = switch
        self._name = name

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        provider = self._switch.current
        if provider is None:
            return trace.INVALID_SPAN
        tracer = provider.get_tracer(self._name)
        return tracer.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Span]:  # type: ignore[override]
        end_on_exit = kwargs.pop("end_on_exit", True)
        span = self.start_span(name, *args, **kwargs)
        with trace.use_span(span, end_on_exit=end_on_exit) as current:
            yield current


_SWITCH = _Switch()


@contextmanager
def collected_spans() -> Iterator[InMemorySpanExporter]:
    if trace.get_tracer_provider() is not _SWITCH:
        trace.set_tracer_provider(_SWITCH)
        assert trace.get_tracer_provider() is _SWITCH, "another global tracer provider was set first"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _SWITCH.current = provider
    try:
        yield exporter
    finally:
        _SWITCH.current = None
        provider.shutdown()


def named(spans: Sequence[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    """The spans whose name starts with ``prefix``, in the order they started."""
    return sorted((s for s in spans if s.name.startswith(prefix)), key=lambda s: s.start_time or 0)
