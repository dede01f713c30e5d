"""What an upstream sends on its own: requests (answered), list changes, progress, log messages.

A channel's reader hands every such message to :meth:`Inbound.on_message`. List changes make the
connector list again; progress goes to the call that asked for it (by its progress token); log messages
are forwarded as hub events with the secrets of every connection seen so far masked; resource updates
become hub events with the URI namespaced.

An upstream's requests to the client (the handshake era's ``elicitation/create``,
``sampling/createMessage``, ``roots/list``) are put to the caller of the call they belong to, through
its :class:`~toolbridge.connectors._events.CallEvents` ``ask``, and its answer goes back upstream. The
call is the one whose task reads the request (a streamable-HTTP upstream sends it on that call's own
answer), else the only call in flight on the connector (stdio, the session's stream: the protocol does
not say which call a request belongs to); with several in flight, or a caller that cannot be asked, the
upstream gets an error that says why.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from toolbridge._redact import redact_value
from toolbridge.connectors._events import (
    CALL_EVENTS,
    LOG_LEVELS,
    Ask,
    CallEvents,
    HubEvent,
    LogMessage,
    LogSink,
    ResourceUpdated,
)
from toolbridge.connectors.mcp._channel import Message
from toolbridge.connectors.mcp._uris import outward

__all__ = ["Inbound"]

logger = logging.getLogger("toolbridge.connectors.mcp")

_LIST_CHANGED = frozenset(f"notifications/{kind}/list_changed" for kind in ("tools", "prompts", "resources"))
_LIST_CHANGED_OR_LISTENING = _LIST_CHANGED | {"notifications/subscriptions/acknowledged"}
_PY_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
}
_PY_LEVELS |= {level: logging.WARNING for level in ("error", "critical", "alert", "emergency")}
ASKED_OF_CLIENTS = frozenset({"elicitation/create", "sampling/createMessage", "roots/list"})
"""The requests an upstream may put to its client, relayed to the caller."""
_ASK_TIMEOUT = 300.0
"""How long an upstream's request waits for a caller whose call has no deadline."""
_MAX_SECRET_SOURCES = 10_000
"""Connections whose secrets are remembered for masking; past it, upstream log data is not forwarded."""


class Inbound:
    """The upstream's own messages for one connector: ``emit`` takes hub events, ``relist`` lists again."""

    def __init__(
        self,
        name: str,
        *,
        namespace: str,
        emit: Callable[[HubEvent], None],
        relist: Callable[[], None],
        acknowledged: Callable[[], None] = lambda: None,
        task_status: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """``relist``: list again (a list changed, or a listen stream was acknowledged: what changed
        before it is told by no one); ``acknowledged``: a listen stream was acknowledged (``_listen``
        keeps the stream it replaces until then); ``task_status``: takes a task's new status
        (``notifications/tasks/status``, secrets masked)."""
        self._name = name
        self._namespace = namespace
        self._emit = emit
        self._relist = relist
        self._acknowledged = acknowledged
        self._task_status = task_status
        self._progress: dict[str, CallEvents] = {}
        self._calls: dict[str, _Call] = {}
        """Calls in flight, by progress token."""
        self._tokens = itertools.count(1)
        self._secret_forms: dict[str, tuple[str, ...]] = {}
        """Where secrets came from (a connection id, ``env``) → their current forms, for masking logs."""
        self._secrets: tuple[str, ...] = ()
        """Every remembered form, longest first (a secret inside a longer one must not break the longer)."""

    @contextmanager
    def in_flight(
        self,
        request_id: str,
        events: CallEvents | None,
        deadline: float | None,
        *,
        logs: bool = False,
        task: str | None = None,
    ) -> Iterator[str | None]:
        """One call while it runs: its caller may be asked what the upstream asks, and gets the log
        messages the upstream sends on the call's own answer when ``logs`` (it asked for them); yields a
        progress token when ``events`` receive the upstream's progress (None: none was asked for).
        ``task``: the upstream's id of the task whose ``tasks/result`` this is (what the upstream asks
        for that task, ``related-task`` in its ``_meta``, goes to this caller, and only that)."""
        token = f"{request_id}:{next(self._tokens)}"
        log = events.log if logs and events is not None else None
        self._calls[token] = _Call(events, events.ask if events is not None else None, deadline, log, task)
        if events is not None and events.progress is not None:
            self._progress[token] = events
        try:
            yield token if token in self._progress else None
        finally:
            self._progress.pop(token, None)
            self._calls.pop(token, None)

    def learn_secrets(self, source: str, secrets: Sequence[str]) -> None:
        """Remember the current forms of a connection's secrets (a refresh replaces them), to mask logs."""
        if not secrets or self._secret_forms.get(source) == tuple(secrets):
            return
        self._secret_forms[source] = tuple(secrets)
        every = {form for forms_ in self._secret_forms.values() for form in forms_}
        self._secrets = tuple(sorted(every, key=len, reverse=True))

    async def on_message(self, message: Message) -> Message | None:
        """What the channel's reader hands over; it must never raise (that would end the reader)."""
        try:
            return await self._handle(message)
        except Exception:  # a closed agent stream, a bad listener: log it, keep reading
            logger.exception("%s: could not handle %r from the upstream", self._name, message.get("method"))
            return None

    async def _handle(self, message: Message) -> Message | None:
        method = message.get("method")
        raw = message.get("params")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if "id" in message:  # a request from the server
            if method == "ping":
                return {"result": {}}
            if method in ASKED_OF_CLIENTS:
                return await self._ask(str(method), params)
            return {
                "error": {"code": -32601, "message": f"toolbridge does not serve {method!r} to upstreams"}
            }
        if method in _LIST_CHANGED_OR_LISTENING:
            self._relist()  # (on a listen ack: what changed before it?)
            if method == "notifications/subscriptions/acknowledged":
                self._acknowledged()
        elif method == "notifications/progress":
            events = self._progress.get(str(params.get("progressToken")))
            if events is not None and events.progress and isinstance(params.get("progress"), int | float):
                total = params.get("total") if isinstance(params.get("total"), int | float) else None
                note = params.get("message") if isinstance(params.get("message"), str) else None
                await events.progress(float(params["progress"]), total, note)
        elif method == "notifications/message":
            await self._log(params)
        elif method == "notifications/resources/updated" and isinstance(params.get("uri"), str):
            self._emit(ResourceUpdated(self._name, outward(self._namespace, params["uri"])))
        elif method == "notifications/tasks/status" and self._task_status is not None:
            await self._task_status(self.masked(params))
        return None

    async def _ask(self, method: str, params: Mapping[str, Any]) -> Message:
        """Put the upstream's request to the caller of the call it belongs to; the answer's members."""
        meta = params.get("_meta")
        related = meta.get(RELATED_TASK_META_KEY) if isinstance(meta, Mapping) else None
        calls = [c for c in self._calls.values() if c.task is None]
        if related is not None:  # a task's: to the agent waiting on its tasks/result
            task = related.get("taskId") if isinstance(related, Mapping) else None
            waiting = next((c for c in self._calls.values() if c.task is not None and c.task == task), None)
            if waiting is None:
                return _refused(
                    f"toolbridge puts a task's {method!r} to its agent only while the agent waits on "
                    "tasks/result for that task"
                )
            ask, deadline = waiting.ask, waiting.deadline
        elif (own := self._own_call()) is not None:  # read by the call's own task: its answer stream
            ask, deadline = own.ask, own.deadline
        elif len(calls) == 1:
            ask, deadline = calls[0].ask, calls[0].deadline
        else:
            why = (
                "no call of toolbridge's is waiting for it"
                if not calls
                else f"toolbridge has {len(calls)} calls in flight on {self._name!r} and cannot "
                "tell which one it belongs to (send it on that call's answer stream)"
            )
            return _refused(f"toolbridge cannot put {method!r} to a client: {why}")
        if ask is None:
            return _refused(
                f"the caller of this call cannot answer {method!r}: only an MCP agent of the 2025-11-25 "
                "era can be asked mid-call (not a REST or Python caller, nor a 2026-07-28 agent)"
            )
        left = (deadline - anyio.current_time()) if deadline is not None else _ASK_TIMEOUT
        with anyio.move_on_after(max(left, 0.0)):
            return await ask(method, self.masked(params))
        return _refused(f"the agent did not answer {method!r} before the call's deadline")

    async def answer(self, result: Mapping[str, Any], ask: Ask) -> dict[str, Any] | None:
        """A stateless-era upstream's ``input_required`` result put to a caller that is asked with
        requests (a handshake-era agent), one request at a time: the next round's ``inputResponses``
        and ``requestState``; None when ``result`` asks nothing, or the caller refused a request (the
        result then stays the call's answer: an :class:`~toolbridge.errors.InputRequired` error)."""
        requests = result.get("inputRequests")
        if result.get("resultType") != "input_required" or not isinstance(requests, dict):
            return None
        responses: dict[str, Any] = {}
        for key, request in requests.items():
            if not isinstance(request, dict) or request.get("method") not in ASKED_OF_CLIENTS:
                return None
            params = request.get("params")
            reply = await ask(str(request["method"]), self.masked(params if isinstance(params, dict) else {}))
            if "result" not in reply:
                logger.info("%s: the agent did not answer %s: %s", self._name, key, reply.get("error"))
                return None
            responses[key] = reply["result"]
        state = result.get("requestState")
        return {"inputResponses": responses} | ({"requestState": state} if isinstance(state, str) else {})

    @property
    def secret_forms(self) -> tuple[str, ...]:
        """The forms of every secret seen so far (every connection's, the static ones), longest first."""
        return self._secrets

    def masked(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """What an upstream asks an agent, with the secrets of every connection seen so far masked (an
        upstream may echo what it was sent, as in its results)."""
        return redact_value(params, self._secrets) if self._secrets else params

    def _own_call(self) -> _Call | None:
        """The call in flight whose own task reads this message (its answer stream), if any."""
        events = CALL_EVENTS.get()
        if events is None:
            return None
        return next((c for c in self._calls.values() if c.events is events), None)

    async def _log(self, params: Mapping[str, Any]) -> None:
        level = params.get("level")
        level = level if level in LOG_LEVELS else "info"
        if len(self._secret_forms) > _MAX_SECRET_SOURCES:  # cannot vouch for the masking any more
            data: Any = "[an upstream log message, not forwarded: too many connections to mask]"
        else:
            data = redact_value(params.get("data"), self._secrets) if self._secrets else params.get("data")
        raw = params.get("logger")
        upstream = raw if isinstance(raw, str) else None
        logger.log(_PY_LEVELS.get(level, logging.INFO), "%s says: %s", self._name, str(data)[:500])
        own = self._own_call()
        if own is not None and own.log is not None:  # about this call only: for its caller only
            await own.log(level, data, self._name if upstream is None else f"{self._name}.{upstream}")
        else:
            self._emit(LogMessage(self._name, level, data, upstream))


@dataclass(frozen=True, slots=True)
class _Call:
    """A call in flight: its caller's events, how to ask the caller, its deadline
    (``anyio.current_time``), where its log messages go (None: to every agent, as the server's), and
    the task it waits on (a ``tasks/result``)."""

    events: CallEvents | None
    ask: Ask | None
    deadline: float | None
    log: LogSink | None
    task: str | None = None
    """The upstream's id of the task whose ``tasks/result`` this is (None: a call)."""


RELATED_TASK_META_KEY = "io.modelcontextprotocol/related-task"


def _refused(message: str) -> Message:
    return {"error": {"code": -32601, "message": message}}
