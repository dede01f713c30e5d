"""The Hub: owns the catalog, the connectors, storage, and the one call path every surface ends in.

``Hub.call(principal, tool, arguments)`` runs, in order:

1. **authorize** — the tool must exist and the principal's scopes must allow it;
2. **validate** — arguments against the tool's input schema (compiled once, on first use), strictly;
3. **resolve credentials** — connection → vault → auth scheme, refreshed if expiring (``credentials/``);
4. **invoke** — the connector's ``invoke`` under the call deadline (the resilience layer wraps this;
   ``_invoke``);
5. **shape** — size-capped result with an explicit truncation marker;
6. **record** — a hash-chained audit row, whatever the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio

from toolbridge._clock import ms_since as _ms
from toolbridge._clock import now
from toolbridge._forks import reseed_after_fork
from toolbridge._invoke import invoke
from toolbridge._pending import Pending as _Pending
from toolbridge._pending import new_request_id as _request_id
from toolbridge._pending import reseed_ids as _reseed_ids
from toolbridge._perform import perform
from toolbridge._redact import redact_error, redact_value
from toolbridge._shape import CallResult, shape
from toolbridge._trace import CallSpan
from toolbridge.audit import AuditLog, args_digest, audit_entry, canonical_json
from toolbridge.catalog import (
    QUARANTINE_META_KEY,
    Catalog,
    SearchResult,
    Tool,
    ToolAnnotations,
    quarantine_error,
)
from toolbridge.connectors import Connector, Credentials, Invocation, key_carrier
from toolbridge.connectors._events import EventBus, HubLink, ListChanged, ReportsToHub
from toolbridge.connectors.python import PythonConnector
from toolbridge.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    RateLimited,
    StorageError,
    TokenRefreshFailed,
    ToolbridgeError,
    ToolExecutionError,
    ToolNotFound,
)
from toolbridge.policy import AgentStore, Principal, Scope
from toolbridge.resilience import Resilience, ResiliencePolicy, parse_rate
from toolbridge.resilience._executor import SAME_KEY
from toolbridge.resilience._idempotency import IdempotencyStore, Replay, check_key
from toolbridge.resilience._outbox import Outbox, is_queueable
from toolbridge.storage import MEMORY_URL, Database

if TYPE_CHECKING:
    from toolbridge.credentials import CredentialManager, KeySource
    from toolbridge.events import EventService
    from toolbridge.settings import Settings

__all__ = ["Hub", "Limits"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Limits:
    max_argument_bytes: int = 1_048_576
    """Serialized arguments larger than this are refused (413)."""
    max_result_bytes: int = 65_536
    """Results larger than this are cut, with a marker saying so."""
    call_timeout: float = 60.0
    """Seconds a call may take in all, attempts included."""


class Hub:
    """The catalog of tools and the call path. Use as ``async with Hub(...) as hub``."""

    def __init__(
        self,
        *,
        database: Database | str = MEMORY_URL,
        limits: Limits | None = None,
        agents: Mapping[str, Sequence[str]] | None = None,
        key_cache_ttl: float = 5.0,
        resilience: Resilience | None = None,
        agent_rates: Mapping[str, str] | None = None,
        credentials: CredentialManager | None = None,
        tool_modes: Mapping[str, str] | None = None,
        outbox: Outbox | None = None,
        event_service: EventService | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        reseed_after_fork(_reseed_ids)
        self.database = database if isinstance(database, Database) else Database(database)
        self.limits = limits or Limits()
        self.catalog = catalog if catalog is not None else Catalog()
        self.agents = AgentStore(self.database, cache_ttl=key_cache_ttl)
        shared = credentials.audit if credentials is not None else None
        self.audit = shared or AuditLog(self.database)
        """The audit log; the credentials' own when they were built with one (one writer, one chain)."""
        self.resilience = resilience or Resilience()
        self.idempotency = IdempotencyStore(self.database)
        self.outbox = outbox or Outbox(self.database)
        self._agent_rates = {name: parse_rate(rate) for name, rate in (agent_rates or {}).items()}
        self.tool_modes: dict[str, str] = dict(tool_modes or {})
        """Agent name → how MCP clients of that agent see the catalog: ``full`` (default) or ``search``."""
        self._declared_agents = {name: list(scopes) for name, scopes in (agents or {}).items()}
        self._connectors: dict[str, Connector] = {}
        self._stack: AsyncExitStack | None = None
        self.events = EventBus()
        """Upstream events (list changes, log messages, resource updates) for surfaces to forward."""
        self.credentials = credentials
        self.event_service = event_service
        """Inbound webhooks, the event log and subscriptions (``toolbridge.events``), when configured."""

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, *, keys: KeySource | None = None) -> Hub:
        """A hub built from settings; ``keys`` is the vault's master key source (default: the key file)."""
        from toolbridge.assembly._hub import build_hub

        return build_hub(settings, keys=keys)

    @classmethod
    def from_file(cls, path: str | Path) -> Hub:
        """A hub configured by a ``toolbridge.yaml`` file."""
        from toolbridge.settings import load_settings

        return cls.from_settings(load_settings(path))

    def add_connector(self, connector: Connector, *, policy: ResiliencePolicy | None = None) -> None:
        """Add a connector and its tools (before the hub starts: it enters connectors on start).

        A connector that reports between calls (:class:`~toolbridge.connectors.ReportsToHub`: an MCP
        upstream's notifications) is attached to this hub: its events reach the hub's event bus (and the
        agents through the surfaces) and its tool list changes the catalog."""
        if self.running:
            raise ConfigurationError(
                f"cannot add connector {connector.name!r} to a running hub",
                hint="add connectors before 'async with hub'",
            )
        if connector.name in self._connectors:
            raise ConfigurationError(
                f"two connectors are named {connector.name!r}", hint="give each connector a unique name"
            )
        if isinstance(connector, ReportsToHub):
            name = connector.name
            connector.attach(HubLink(emit=self.events.emit, tools_changed=lambda: self.tools_changed(name)))
        tools = list(connector.tools())
        for tool in tools:
            self.catalog.add(tool)
        self._connectors[connector.name] = connector
        if policy is not None:
            self.resilience.configure(connector.name, policy)

    def wrap_connector(self, name: str, wrap: Callable[[Connector], Connector]) -> Connector:
        """Replace connector ``name`` by ``wrap(connector)`` (same tools), e.g. to inject faults in a test."""
        if self.running:
            raise ConfigurationError(
                f"cannot wrap connector {name!r} of a running hub", hint="wrap it before start"
            )
        wrapped = wrap(self._connectors[name])
        if wrapped.name != name:
            raise ConfigurationError(
                f"the wrapper of {name!r} renamed it to {wrapped.name!r}", hint="keep the name"
            )
        self._connectors[name] = wrapped
        return wrapped

    def connector_names(self) -> list[str]:
        return sorted(self._connectors)

    def connector(self, name: str) -> Connector:
        return self._connectors[name]

    def key_carrier(self, tool: Tool) -> str | None:
        """How a call's idempotency key reaches ``tool``'s upstream, or None when it does not (then a
        keyed write is not retried once its request may have reached the upstream)."""
        return key_carrier(self._connectors[tool.connector], tool)

    @overload
    def tool(self, fn: F, /) -> F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        /,
        *,
        connector: str = ...,
        name: str | None = ...,
        description: str | None = ...,
        read_only: bool = ...,
        destructive: bool = ...,
        idempotent: bool = ...,
        title: str | None = ...,
        blocking: bool = ...,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        /,
        *,
        connector: str = "local",
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        title: str | None = None,
        blocking: bool = True,
    ) -> F | Callable[[F], F]:
        """Register a Python function as the tool ``<connector>.<name>`` (decorator)."""
        annotations = ToolAnnotations(
            read_only=read_only, destructive=destructive, idempotent=idempotent or read_only, open_world=False
        )

        def register(func: F) -> F:
            target = self._python_connector(connector)
            tool = target.add(
                func,
                name=name,
                description=description,
                annotations=annotations,
                title=title,
                blocking=blocking,
            )
            self.catalog.add(tool)
            return func

        return register(fn) if fn is not None else register

    def _python_connector(self, name: str) -> PythonConnector:
        existing = self._connectors.get(name)
        if existing is None:
            created = PythonConnector(name)
            self._connectors[name] = created
            return created
        if not isinstance(existing, PythonConnector):
            raise ConfigurationError(
                f"connector {name!r} is not a Python connector",
                hint="register the function under another connector",
            )
        return existing

    # -- lifetime ----------------------------------------------------------------------------------

    async def __aenter__(self) -> Hub:
        stack = AsyncExitStack()
        # last on the way out: tools still being embedded for search stop (the process may exit next)
        stack.push_async_callback(anyio.to_thread.run_sync, self.catalog.stop_embedding)
        try:
            await stack.enter_async_context(self.database)
            await stack.enter_async_context(self.resilience)  # a shared limiter's Redis: checked here
            await stack.enter_async_context(self.idempotency)
            await self.agents.sync_config(self._declared_agents)
            await stack.enter_async_context(self.audit)
            if self.event_service is not None:
                await stack.enter_async_context(self.event_service)
            if self.credentials is not None:
                await stack.enter_async_context(self.credentials)
            for connector in list(self._connectors.values()):
                await stack.enter_async_context(connector)
                self.refresh_tools(connector.name)  # some connectors know their tools only once started
        except BaseException:  # a failed or cancelled start: undo what started, then re-raise
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    @property
    def running(self) -> bool:
        return self._stack is not None

    # -- the catalog as a principal sees it --------------------------------------------------------

    def list_tools(self, principal: Principal) -> list[Tool]:
        """The tools ``principal`` may call; quarantined tools are hidden."""
        keep = self.visible_to(principal)
        return [t for t in self.catalog if keep(t)]

    def get_tool(self, principal: Principal, name: str) -> Tool:
        return self.catalog.get(name, visible=self.visible_to(principal))

    def with_guesses(self, principal: Principal, exc: ToolNotFound) -> ToolNotFound:
        """``exc`` with the search index's good matches for the missing name, when none is close in
        spelling for a "did you mean" ('shop.orders_new' → 'shop.create_order'); only tools ``principal``
        may use are guessed."""
        if exc.suggestions or not exc.tool:
            return exc
        found = self.search_tools(principal, exc.tool.replace(".", " "), limit=3)
        return ToolNotFound(exc.tool, suggestions=[h.tool.name for h in found.hits]) if found.good else exc

    def search_tools(
        self,
        principal: Principal,
        query: str,
        *,
        limit: int = 10,
        where: Callable[[Tool], bool] | None = None,
    ) -> SearchResult:
        """The tools ``principal`` may call that best match ``query`` (and ``where``, if given)."""
        return self.catalog.search(query, limit=limit, keep=self.visible_to(principal, where))

    @staticmethod
    def visible_to(
        principal: Principal, where: Callable[[Tool], bool] | None = None
    ) -> Callable[[Tool], bool]:
        """Whether a tool is visible to ``principal`` (in scope, not quarantined) and passes ``where``."""

        sees = principal.sight()

        def keep(t: Tool) -> bool:
            return sees(t) and QUARANTINE_META_KEY not in t.meta and (where is None or where(t))

        return keep

    def tools_changed(self, connector: str) -> None:
        """What a connector whose tools change while running (MCP) calls through its :class:`HubLink`:
        its tools are read again when the hub is running."""
        if self.running:
            self.refresh_tools(connector)

    def refresh_tools(self, connector: str) -> None:
        """Read the tools of ``connector`` again (its tool list or a tool's state changed)."""
        current = self._connectors[connector].tools()
        if [t for t in self.catalog if t.connector == connector] == sorted(current, key=lambda t: t.name):
            return
        self.catalog.remove_connector(connector)
        for tool in current:
            self.catalog.add(tool)
        self.events.emit(ListChanged(connector, "tools"))

    async def authenticate(self, api_key: str | None, *, request_id: str | None = None) -> Principal:
        """The principal holding ``api_key``; failures raise 401 and are audited."""
        try:
            return await self.agents.authenticate(api_key)
        except AuthenticationError as exc:
            await self._record(request_id or _request_id(), "anonymous", "(authenticate)", "", 0.0, exc)
            raise

    # -- the call path -----------------------------------------------------------------------------

    async def call(
        self,
        principal: Principal,
        tool: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        connection: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> CallResult:
        """Call ``tool`` as ``principal``. Raises a :class:`~toolbridge.errors.ToolbridgeError` on failure.

        A write whose connector says ``on_exhausted: queue`` and that failed transiently is put in the
        outbox instead: the result is then ``queued`` and names the outbox item to ask about.
        """
        return await self._call(
            principal,
            tool,
            arguments,
            connection=connection,
            idempotency_key=idempotency_key,
            request_id=request_id,
            from_outbox=False,
        )

    async def delegate(
        self,
        principal: Principal,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        request_id: str,
        idempotency_key: str | None = None,
        claimed: bool = False,
        defer_completion: bool = False,
        budget: float | None = None,
    ) -> CallResult:
        """Call ``tool`` for ``principal`` as one step of a call it is making (a capability's provider, a
        pipeline's step): the scope that let it make that call covers ``tool``, its inbound rate limit
        was counted for that call, and this one gets its own audit row under the same ``request_id``.
        Everything else is the call path as for :meth:`call` (validation, credentials, resilience).

        ``claimed``: the caller claimed ``idempotency_key`` itself, in its own transaction
        (:meth:`IdempotencyStore.claim_in` with what :meth:`early_claim` gives); the outcome is stored
        under it as if this call had claimed it. With ``defer_completion`` too, a success is not stored:
        the caller writes :meth:`stored_result` with :meth:`IdempotencyStore.complete_in` in its own next
        transaction (until then the key stays claimed; a failure is stored here as usual). ``budget``:
        seconds for this call when less than ``call_timeout`` (the caller's own call has a deadline)."""
        step = Principal(principal.name, (Scope(tool, "write"),), principal.kind, principal.key_id)
        return await self._call(
            step,
            tool,
            arguments,
            connection=None,
            idempotency_key=idempotency_key,
            request_id=request_id,
            from_outbox=False,
            delegated=True,
            claimed=claimed and idempotency_key is not None,
            deferred=claimed and defer_completion,
            budget=budget,
        )

    def seconds_until(self, deadline: float) -> float:
        """What is left until ``deadline`` (an :class:`Invocation`'s) on the clock that set it."""
        return deadline - self.resilience.clock()

    @staticmethod
    def stored_result(result: CallResult) -> dict[str, Any]:
        """What a keyed call's success is stored as under its key (and replayed from)."""
        stored = {
            "value": result.value,
            "text": result.text,
            "truncated": result.truncated,
            "size": result.size,
        }
        return {**stored, "queued": True} if result.queued else stored

    def early_claim(self, tool: str, arguments: Mapping[str, Any]) -> tuple[str, str] | None:
        """What a keyed call of ``tool`` claims its key with (the tool's catalog name, the arguments'
        digest), for a caller that claims it ahead, in its own transaction; None when ``tool`` is unknown
        or not safe to repeat: a claim orphaned before its call was sent would then be answered
        ``outcome_unknown``, so such a call claims its key itself, as late as it can."""
        try:
            target = self.catalog.get(tool)
        except ToolbridgeError:
            return None
        return (target.name, args_digest(arguments)) if self._safe_to_repeat(target) else None

    async def _call(
        self,
        principal: Principal,
        tool: str,
        arguments: Mapping[str, Any] | None,
        *,
        connection: str | None,
        idempotency_key: str | None,
        request_id: str | None,
        from_outbox: bool,
        delegated: bool = False,
        claimed: bool = False,
        deferred: bool = False,
        budget: float | None = None,
    ) -> CallResult:
        if self._stack is None:
            raise RuntimeError("the hub is not running; use 'async with hub:' before calling tools")
        call = _Pending(
            principal,
            tool,
            arguments if arguments is not None else {},
            idempotency_key,
            request_id or _request_id(),
            now(),
            from_outbox,
            delegated,
            claimed=claimed,
            timeout=self.limits.call_timeout if budget is None else min(budget, self.limits.call_timeout),
        )
        with CallSpan(call) as span:  # step 6's trace span (a no-op without a tracer provider)
            return span.done(await self._settle(call, connection, deferred))

    async def _settle(self, call: _Pending, connection: str | None, deferred: bool) -> CallResult:
        """The call's outcome: steps 1-5, then its audit row (and its key's stored outcome)."""
        principal, tool, idempotency_key = call.principal, call.tool, call.key
        try:
            result = await self._run(call, connection)
        except ToolbridgeError as exc:
            return await self._failed(call, exc)
        except Exception as exc:  # a bug below the hub: still one audit row, and the key's claim is closed
            logger.exception("call of %s failed inside toolbridge", tool)
            failure = ToolExecutionError(
                f"{tool!r} failed inside toolbridge: {type(exc).__name__}: {str(exc)[:200]}",
                tool=tool,
                hint="this is a toolbridge bug: report it with the server log's traceback",
            )
            return await self._failed(call, failure)
        if result.replayed:
            return result  # recorded by _replay; the stored outcome stays as it was
        if call.claimed and not deferred:  # deferred: the caller stores it with its own next write
            await self._finish_claim(principal, idempotency_key, result=result)
        await self._record(
            call.request_id, principal.id, tool, call.digest, result.duration_ms, None, durable=call.writes
        )
        return result

    def perform(
        self,
        principal: Principal,
        action: str,
        arguments: Mapping[str, Any],
        *,
        scope: str | None,
        request_id: str | None = None,
    ) -> AbstractAsyncContextManager[Tool | None]:
        """An agent action that is not a tool call (a download, a federated read), run in the block:
        authorized as the tool ``scope``, rate-limited, audited once whatever its outcome."""
        rid = request_id or _request_id()
        return perform(self, principal, action, arguments, scope=scope, request_id=rid)

    async def _run(self, call: _Pending, connection: str | None) -> CallResult:
        """Steps 1-5 of the call path; ``call`` collects what the caller needs to record the outcome."""
        if not isinstance(call.args, Mapping):
            raise BadRequest(
                "tool arguments must be a JSON object", hint='pass {"name": value, ...}', tool=call.tool
            )
        canonical = canonical_json(call.args)  # serialized once: hashed for the audit, measured for the cap
        call.digest = args_digest(call.args, canonical=canonical)
        target = call.target = self._authorize(call.principal, call.tool)
        limit = self.limits.max_argument_bytes
        self.catalog.validate(target, call.args, size=len(canonical), max_bytes=limit)
        if not call.delegated and self._agent_rates:  # counted when the call it is a step of came in
            await self._check_inbound_rate(call.principal, target.name)
        if call.key is not None and not call.from_outbox and not call.claimed:
            check_key(call.key)
            replay = await self.idempotency.claim(
                call.principal.id,
                call.key,
                target.name,
                call.digest,
                request_id=call.request_id,
                resumable=self._safe_to_repeat(target),
            )
            if replay is not None:
                return await self._replay(
                    replay, call.principal, target, call.digest, call.request_id, call.started
                )
            call.claimed = True
        credentials = None
        if connection is not None or self._binds(target):
            credentials = await self._resolve_credentials(target, call, connection)
            call.credentials = credentials
        deadline = self.resilience.clock() + call.timeout - (now() - call.started)  # resolving took some
        invocation = Invocation(
            call.principal,
            call.request_id,
            deadline,
            credentials,
            connection,
            call.key,
            hold=self._holder(target.connector),
        )
        connector, ends = self._connectors[target.connector], call.started + call.timeout
        value = await invoke(
            self.resilience, connector, target, call.args, invocation, ends=ends, seconds=call.timeout
        )
        if call.secrets:  # an upstream may echo what it was sent
            value = redact_value(value, call.secrets)
        kept, text, truncated, size = shape(value, max_bytes=self.limits.max_result_bytes, tool=target)
        return CallResult(call.tool, kept, text, truncated, size, call.request_id, _ms(call.started))

    async def _failed(self, call: _Pending, exc: ToolbridgeError) -> CallResult:
        """Record a failure; put it in the outbox when its connector queues, else raise it."""
        redact_error(exc, call.secrets)
        if isinstance(exc, ToolNotFound):  # every surface's answer guesses from the index
            exc = self.with_guesses(call.principal, exc)
        queued = None
        target = call.target
        queues = target is not None and not call.from_outbox and not exc.replayed
        if queues and target is not None and self._queues(target, exc, call.key):
            queued = await self._enqueue(
                call.principal, target, call.args, call.key, exc, call.request_id, call.started
            )
        if call.claimed and queued is None and target is not None and self._runs_again(target, exc):
            with anyio.CancelScope(shield=True):  # not stored: the same key runs the call again
                await self._release_claim(call.principal, str(call.key))
            if not (target.annotations.read_only or target.annotations.idempotent):  # say which key
                exc.hint = f"{exc.hint}; {SAME_KEY}" if exc.hint else SAME_KEY
        elif call.claimed:
            await self._finish_claim(call.principal, call.key, error=None if queued else exc, result=queued)
        await self._record(
            call.request_id,
            call.principal.id,
            call.tool,
            call.digest,
            _ms(call.started),
            exc,
            outcome="queued" if queued else "replayed" if exc.replayed else None,
            durable=call.writes,
        )
        if queued is None:
            raise exc
        return queued

    def safe_to_repeat(self, name: str) -> bool:
        """Whether a keyed call of the tool ``name`` may run again after it failed upstream: the tool is
        read-only or idempotent, or its connector sends the key upstream (which then applies it once).
        False for a tool no longer in the catalog (its connector removed meanwhile): the stored outcome
        of its last call stands."""
        try:
            tool = self.catalog.get(name)
        except ToolNotFound:
            return False
        return self._safe_to_repeat(tool)

    def _safe_to_repeat(self, tool: Tool) -> bool:
        """Whether a keyed call of ``tool`` may run again: idempotent, or its key reaches the upstream."""
        a = tool.annotations
        return a.read_only or a.idempotent or self.key_carrier(tool) is not None

    def _runs_again(self, tool: Tool, exc: ToolbridgeError) -> bool:
        """Whether a keyed call's failure is left unstored, so the same key runs the call again: a transient
        failure that left nothing applied (refused before sending, 408/425/429/503, an open breaker, a full
        bulkhead, a rate limit, storage or the token endpoint down), or any transient failure (a timeout,
        a reset, a 5xx) of a call that is safe to repeat (its key reaches the upstream, which answers it
        once, or the tool is idempotent). Stored, it would answer every retry of the key with a failure
        the call may not meet again, for the key's lifetime."""
        if is_queueable(exc, keyed=False) or isinstance(exc, RateLimited | StorageError | TokenRefreshFailed):
            return True
        return is_queueable(exc, keyed=True) and self._safe_to_repeat(tool)

    def _queues(self, tool: Tool, exc: ToolbridgeError, key: str | None) -> bool:
        """Whether this failure is put in the outbox: a write, a queueing connector, a transient failure
        that left nothing applied — or any transient failure when a key makes the retry safe."""
        if tool.annotations.read_only or self.resilience.state(tool.connector).policy.on_exhausted != "queue":
            return False
        return is_queueable(exc, keyed=key is not None and self.key_carrier(tool) is not None)

    async def _enqueue(
        self,
        principal: Principal,
        tool: Tool,
        args: Mapping[str, Any],
        key: str | None,
        exc: ToolbridgeError,
        request_id: str,
        started: float,
    ) -> CallResult:
        item = await self.outbox.enqueue(principal.id, tool.name, args, key, exc)
        value = {
            "status": "queued",
            "outbox_id": item.id,
            "reason": exc.message,
            "next_attempt_at": item.next_attempt_at.isoformat(timespec="seconds"),
            "hint": f"toolbridge will retry it; ask for its status with GET /v1/outbox/{item.id}",
        }
        kept, text, truncated, size = shape(value, max_bytes=self.limits.max_result_bytes)
        return CallResult(tool.name, kept, text, truncated, size, request_id, _ms(started), queued=True)

    async def _release_claim(self, principal: Principal, key: str) -> None:
        try:
            await self.idempotency.release(principal.id, key)
        except StorageError:  # left as a process that died leaves it: its lease runs out (docs/resilience.md)
            logger.warning("could not release idempotency key %r of %s", key, principal.id, exc_info=True)

    async def _finish_claim(
        self,
        principal: Principal,
        key: str | None,
        *,
        result: CallResult | None = None,
        error: ToolbridgeError | None = None,
    ) -> None:
        assert key is not None
        stored = None if result is None else self.stored_result(result)
        with anyio.CancelScope(shield=True):
            if stored is not None and result is not None and result.queued:  # the worker's outcome wins
                await self.idempotency.complete_queued(principal.id, key, result=stored)
            else:
                await self.idempotency.complete(principal.id, key, result=stored, error=error)

    async def _replay(
        self, replay: Replay, principal: Principal, tool: Tool, digest: str, request_id: str, started: float
    ) -> CallResult:
        try:
            stored = replay.raise_or_result()  # a stored error is raised again, as the first call saw it
        except ToolbridgeError as exc:
            exc.replayed = True
            exc.hint = f"{exc.hint}; " if exc.hint else ""
            exc.hint += "this is the stored outcome of the key's first call, not run again: a new key runs it"
            raise
        result = CallResult(
            tool.name,
            stored["value"],
            stored["text"],
            stored["truncated"],
            stored["size"],
            request_id,
            _ms(started),
            replayed=True,
            queued=bool(stored.get("queued")),
        )
        durable = not tool.annotations.read_only  # a write answers once its row is committed, replays too
        rid, ms = request_id, result.duration_ms
        await self._record(rid, principal.id, tool.name, digest, ms, None, replayed=True, durable=durable)
        return result

    async def _check_inbound_rate(self, principal: Principal, action: str) -> None:
        limit = self._agent_rates.get(principal.name) if principal.kind == "agent" else None
        if limit is None:
            return
        wait = await self.resilience.limiter.try_acquire(f"in:{principal.id}", limit)
        if wait > 0:
            raise RateLimited(
                f"{principal.id} is over its rate limit of {limit.count} per {limit.period:g} s",
                retry_after=wait,
                policy=str(limit),
                tool=action,
            )

    def _holder(self, connector: str) -> Callable[[float], None]:
        return lambda seconds: self.resilience.hold(connector, seconds)

    def _authorize(self, principal: Principal, name: str) -> Tool:
        # a tool outside the principal's scopes answers exactly like a missing one (404, suggestions
        # only from what it can see): an agent must not learn that a tool it cannot see exists
        tool = self.catalog.get(name, visible=principal.can_see)
        if QUARANTINE_META_KEY in tool.meta:
            raise quarantine_error(tool)
        return tool

    def _binds(self, tool: Tool) -> bool:
        """Whether ``tool``'s connector is configured with credentials."""
        return self.credentials is not None and tool.connector in self.credentials.bindings

    async def _resolve_credentials(
        self, tool: Tool, call: _Pending, connection: str | None
    ) -> Credentials | None:
        """Connection → vault → auth scheme, for connectors configured with credentials (a refresh does not
        hold the call past its deadline)."""
        manager, who = self.credentials, call.principal
        if manager is not None and tool.connector in manager.bindings:
            ends = call.started + call.timeout
            return await manager.resolve(
                tool.connector, who, connection, request_id=call.request_id, tool=tool.name, until=ends
            )
        if connection is not None:
            raise BadRequest(
                f"connector {tool.connector!r} takes no connection, but connection {connection!r} was given",
                hint="call without a connection",
                tool=tool.name,
            )
        return None

    async def _record(
        self,
        request_id: str,
        principal: str,
        tool: str,
        digest: str,
        duration_ms: float,
        error: ToolbridgeError | None,
        *,
        replayed: bool = False,
        outcome: str | None = None,
        durable: bool = False,
    ) -> None:
        """Append the call's audit row; ``durable``: return once it is in the database (a write's)."""
        outcome = "replayed" if replayed else outcome
        entry = audit_entry(
            request_id, principal, tool, digest, duration_ms=duration_ms, error=error, outcome=outcome
        )
        if durable:
            await self.audit.record_durably(entry)
        else:
            await self.audit.record(entry)
