"""Trace spans of the call path (OpenTelemetry), and W3C trace context in and out of the hub.

toolbridge uses ``opentelemetry-api`` only: until an SDK's tracer provider is set (by the CLI, from the
``telemetry:`` section of toolbridge.yaml or the ``OTEL_*`` variables: ``toolbridge.cli._telemetry``, or
by an application embedding the hub) every span here is the API's no-op, and a call pays for one
``start_span`` that returns it.

* :class:`CallSpan` — one span per :meth:`Hub.call <toolbridge.Hub.call>`, ``toolbridge.call {tool}``:
  ``SERVER``, or ``INTERNAL`` for a call made as a step of another (a pipeline's step, a capability's
  provider), under its span. Its attributes say who called what and how it ended; never the arguments,
  the result, a key or a secret.
* :func:`attempt_span` — a ``CLIENT`` span per upstream attempt of a traced call, made by the resilience
  layer, current while the connector sends: :func:`outgoing` puts its context on the upstream request
  (``traceparent``/``tracestate``, by the global propagator: W3C's unless the application set another).
* :func:`incoming` — the parent context an inbound request carries (REST, MCP over HTTP), for
  :func:`continued` to make current around the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from toolbridge.errors import ToolbridgeError

if TYPE_CHECKING:
    from types import TracebackType

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from toolbridge._pending import Pending
    from toolbridge._shape import CallResult

__all__ = ["CallSpan", "attempt_span", "continued", "incoming", "outgoing", "retry_reason", "upstream_status"]

_found: list[Tracer] = []
"""toolbridge's tracer, once asked for: the API's proxy, which follows the global tracer provider set
after it was made (or the provider's own tracer, when one was set before)."""
STATUS = "http.response.status_code"
"""The attribute of an upstream's HTTP status (OpenTelemetry's semantic conventions)."""


@dataclass(slots=True)
class _Call:
    """What the attempts of a traced call add to its span."""

    span: Span
    attempts: int = 0
    status: int | None = None


_CALL: ContextVar[_Call | None] = ContextVar("toolbridge_call_span", default=None)


class CallSpan:
    """``with CallSpan(call) as span: return span.done(result)``: the call's span, current in the block
    (a no-op without a tracer provider). Leaving it with a :class:`ToolbridgeError` marks it ``ERROR``
    with the error's code."""

    __slots__ = ("_call", "_detach", "_reset", "_span")

    def __init__(self, call: Pending) -> None:
        self._call = call
        self._span: Span | None = None

    def __enter__(self) -> CallSpan:
        call = self._call
        kind = SpanKind.SERVER if _CALL.get() is None else SpanKind.INTERNAL  # a step of a traced call
        span = _tracer().start_span(f"toolbridge.call {call.tool}", kind=kind)
        if not span.get_span_context().is_valid:  # no tracer provider: nothing to record or pass on
            return self
        self._span = span
        self._detach = context.attach(trace.set_span_in_context(span))
        self._reset = _CALL.set(_Call(span))
        return self

    def done(self, result: CallResult) -> CallResult:
        """``result``, its outcome noted on the span."""
        if self._span is not None:
            self._span.set_attribute("toolbridge.replayed", result.replayed)
            self._span.set_attribute(
                "toolbridge.outcome", "queued" if result.queued else "replayed" if result.replayed else "ok"
            )
        return result

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            if span.is_recording():
                span.set_attributes(self._attributes())
                if self._call.target is None:  # not in the catalog: the span's name stays of few values
                    span.update_name("toolbridge.call (unknown)")
                if exc is not None:
                    _failed(span, exc)
        finally:
            traced = _CALL.get()
            _CALL.reset(self._reset)
            context.detach(self._detach)
            if traced is not None:
                status = traced.status if exc is None else _status_of(exc) or traced.status
                span.set_attribute("toolbridge.attempts", traced.attempts)
                if status is not None:
                    span.set_attribute(STATUS, status)
            span.end()

    def _attributes(self) -> dict[str, AttributeValue]:
        call = self._call
        attributes: dict[str, AttributeValue] = {
            "toolbridge.tool": call.tool[:200],  # as the agent named it, when no tool has that name
            "toolbridge.principal": call.principal.id,
            "toolbridge.request_id": call.request_id,
            "toolbridge.idempotency_key_given": call.key is not None,
        }
        if call.target is not None:
            attributes["toolbridge.tool"] = call.target.name
            attributes["toolbridge.connector"] = call.target.connector
        return attributes


def attempt_span(connector: str, tool: str, why: str | None) -> AbstractContextManager[None]:
    """One upstream attempt's span (``CLIENT``), current in the block, numbered in its call; ``why``:
    what the previous attempt's failure was classified as, for a retry. Nothing outside a traced call
    (no tracer provider, or an action that is no call): then the cheapest block there is."""
    return _NOTHING if _CALL.get() is None else _AttemptSpan(connector, tool, why)


_NOTHING = nullcontext()


class _AttemptSpan:
    """:func:`attempt_span` in a traced call (a class, not a generator: it is on every attempt's path)."""

    __slots__ = ("_detach", "_span", "_start")

    def __init__(self, connector: str, tool: str, why: str | None) -> None:
        self._start = (connector, tool, why)
        self._span: Span | None = None

    def __enter__(self) -> None:
        traced = _CALL.get()
        if traced is None:
            return
        connector, tool, why = self._start
        span = _tracer().start_span(f"toolbridge.attempt {connector}", kind=SpanKind.CLIENT)
        traced.attempts += 1
        if span.is_recording():
            span.set_attributes({"toolbridge.connector": connector, "toolbridge.tool": tool})
            span.set_attribute("toolbridge.attempt", traced.attempts)
            if why is not None:
                span.set_attribute("toolbridge.retry_reason", why)
        self._span = span
        self._detach = context.attach(trace.set_span_in_context(span))

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        if span is None:
            return
        context.detach(self._detach)
        if exc is not None and span.is_recording():  # the attempt's failure, noted (and raised on)
            _failed(span, exc)
            status = _status_of(exc)
            if status is not None:
                span.set_attribute(STATUS, status)
        span.end()


def retry_reason(exc: ToolbridgeError, action: str) -> str:
    """What the attempt after the failure ``exc`` (classified as ``action``) is for: ``retry:
    upstream_status 503``, ``refresh: upstream_status 401``, ``retry: upstream_unavailable``."""
    status = _status_of(exc)
    return f"{action}: {exc.code}" if status is None else f"{action}: {exc.code} {status}"


def upstream_status(status: int) -> None:
    """Note the HTTP status an upstream answered (on the attempt's span, and on its call's)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(STATUS, status)
    traced = _CALL.get()
    if traced is not None:
        traced.status = status


def outgoing(headers: MutableMapping[str, str]) -> None:
    """Put the current span's context (``traceparent``, ``tracestate``) on an upstream request's headers;
    nothing when no span context is current (no tracer provider, and no caller's ``traceparent``)."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


_fields: list[tuple[object, frozenset[bytes]]] = []
"""The global propagator as last seen, and the header names it reads (as ASGI spells them)."""


def incoming(headers: Iterable[tuple[bytes, bytes]]) -> Context | None:
    """The trace context an inbound request's (ASGI) headers carry, or None when they carry none."""
    fields = _fields_of(propagate.get_global_textmap())
    carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers if name in fields}
    return propagate.extract(carrier) if carrier else None


def _fields_of(textmap: object) -> frozenset[bytes]:
    if not _fields or _fields[0][0] is not textmap:
        names: set[str] = getattr(textmap, "fields", set())
        _fields[:] = [(textmap, frozenset(n.lower().encode("latin-1") for n in names))]
    return _fields[0][1]


@contextmanager
def continued(parent: Context | None) -> Iterator[None]:
    """``parent`` (from :func:`incoming`) current in the block: a call made in it continues that trace."""
    if parent is None:
        yield
        return
    token = context.attach(parent)
    try:
        yield
    finally:
        context.detach(token)


def _tracer() -> Tracer:
    """toolbridge's tracer (made on first use: importing toolbridge reads no ``OTEL_*`` variable)."""
    if not _found:
        _found.append(trace.get_tracer("toolbridge"))
    return _found[0]


def _failed(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed with ``exc``'s code (its message is not recorded: it may quote an upstream)."""
    code = exc.code if isinstance(exc, ToolbridgeError) else type(exc).__name__
    span.set_status(Status(StatusCode.ERROR, code))
    span.set_attribute("error.type", code)
    span.set_attribute("toolbridge.outcome", "replayed" if getattr(exc, "replayed", False) else "error")
    if isinstance(exc, ToolbridgeError):
        span.set_attribute("toolbridge.replayed", exc.replayed)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "upstream_status", None)
    return status if isinstance(status, int) else None
