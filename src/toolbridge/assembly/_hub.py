"""Settings → Hub. The only place that turns configuration into objects."""

from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING

from toolbridge._suggest import close_matches, did_you_mean
from toolbridge.assembly._credentials import build_credentials
from toolbridge.assembly._events import build_events, event_log, event_service
from toolbridge.assembly._kinds import KINDS, Parts
from toolbridge.audit import AuditLog
from toolbridge.catalog import Catalog
from toolbridge.catalog._semantic import EmbeddingCache
from toolbridge.errors import ConfigurationError
from toolbridge.events._internal import breaker_notices, reauth_notices
from toolbridge.hub import Hub, Limits
from toolbridge.policy import Scope
from toolbridge.resilience import (
    BreakerPolicy,
    BulkheadPolicy,
    OutlierPolicy,
    RedisLimiter,
    Resilience,
    ResiliencePolicy,
    RetryPolicy,
)
from toolbridge.resilience._outbox import Outbox
from toolbridge.settings import ResilienceSettings, Settings
from toolbridge.storage import Database
from toolbridge.worker import add_outbox_tool

if TYPE_CHECKING:
    from toolbridge.catalog import Tool
    from toolbridge.credentials import KeySource

__all__ = ["build_hub"]

logger = logging.getLogger("toolbridge.assembly")


def build_hub(settings: Settings, *, keys: KeySource | None = None) -> Hub:
    _check_scopes(settings)
    database = Database(settings.server.database, pool_size=settings.server.database_pool)
    audit = AuditLog(database)
    log = event_log(settings, database)
    # the event service exists before the parts that report to it (breakers, credentials); it reads the
    # credential manager, built next, only when it resolves a vault: secret
    service = event_service(settings, log, lambda: manager) if log is not None else None
    manager = build_credentials(
        settings, database, keys, audit=audit, on_reauth=reauth_notices(service) if service else None
    )
    hub = Hub(
        database=database,
        credentials=manager,
        limits=Limits(
            **settings.limits.model_dump(include={"max_argument_bytes", "max_result_bytes", "call_timeout"})
        ),
        agents={name: agent.scopes for name, agent in settings.agents.items()},
        agent_rates={name: agent.rate for name, agent in settings.agents.items() if agent.rate},
        tool_modes={name: agent.tool_mode for name, agent in settings.agents.items()},
        outbox=Outbox(database, **settings.outbox.model_dump()),
        resilience=Resilience(
            limiter=_limiter(settings), on_transition=breaker_notices(service) if service else None
        ),
        event_service=service,
        catalog=_catalog(settings),
    )
    parts = Parts(
        settings=settings,
        database=database,
        credentials=manager,
        events=log,
    )
    for name, connector in settings.connectors.items():
        policy = _policy(connector.resilience, long_polls=connector.kind == "workspace")
        hub.add_connector(KINDS[connector.kind](name, connector, parts), policy=policy)
    if service is not None:
        build_events(settings, hub, service)
    if any(c.resilience.on_exhausted == "queue" for c in settings.connectors.values()):
        add_outbox_tool(hub)
        _warn_of_unkeyed_queues(settings, hub)
    if settings.capabilities:  # last: capabilities are checked against every other connector's tools
        from toolbridge.router._build import build_router

        build_router(settings, hub)
    if settings.pipelines:  # after capabilities: its load-time checks need every tool, theirs included
        from toolbridge.assembly._pipelines import build_pipelines

        build_pipelines(settings, hub)
    _warn_of_idle_scopes(settings, hub)
    return hub


def _warn_of_idle_scopes(settings: Settings, hub: Hub) -> None:
    """Warn of an agent's scope that matches no tool (a typo such as ``slak.*:read`` gave an agent that
    saw nothing, without a word), naming the closest connectors. A warning, not an error: a connector
    whose tools are only known once it is reached (an MCP upstream) counts as matching by its name."""
    tools = list(hub.catalog)
    connectors = sorted(set(hub.connector_names()) | {t.connector for t in tools})
    if not connectors:
        return  # a starter file: nothing to match yet
    unlisted = [c for c in connectors if not any(t.connector == c for t in tools)]
    for name, agent in settings.agents.items():
        for text in agent.scopes:
            scope = Scope.parse(text)
            head = scope.pattern.split(".", 1)[0]
            if any(scope.matches(t) for t in tools) or any(fnmatch.fnmatchcase(c, head) for c in unlisted):
                continue
            logger.warning(
                "agents.%s.scopes: %r matches no tool, so it allows nothing (%s)",
                name,
                text,
                _closest(text, head, connectors, tools),
            )


def _closest(text: str, head: str, connectors: list[str], tools: list[Tool]) -> str:
    """What a scope that matches nothing may have meant: the closest connectors, or the connector's tools."""
    if head in connectors:
        own = sorted(t.name for t in tools if t.connector == head)
        close = did_you_mean(close_matches(text.split(":")[0], own))
        listed = f"connector {head!r} has: {', '.join(t.removeprefix(head + '.') for t in own)}"
    else:
        close = did_you_mean(text.replace(head, c, 1) for c in close_matches(head, connectors))
        listed = f"no connector {head!r}; connectors: {', '.join(connectors) or 'none'}"
    return "; ".join(part for part in (close, listed) if part)


def _warn_of_unkeyed_queues(settings: Settings, hub: Hub) -> None:
    """Warn of a connector that queues writes (``on_exhausted: queue``) but sends no idempotency key
    upstream for some of them: such a queued write whose retry meets a reset, a timeout or a 5xx fails for
    good (``outcome_unknown``), since sending it again could apply it twice. MCP upstreams carry no key;
    the tools of other kinds are known here."""
    for name, config in settings.connectors.items():
        if config.resilience.on_exhausted != "queue":
            continue
        writes = [
            t
            for t in hub.catalog
            if t.connector == name and not (t.annotations.read_only or t.annotations.idempotent)
        ]
        unkeyed = [t.operation for t in writes if hub.key_carrier(t) is None]
        if config.kind == "mcp" or unkeyed:
            which = (
                "its tools"
                if config.kind == "mcp"
                else ", ".join(unkeyed[:5]) + (" …" if unkeyed[5:] else "")
            )
            logger.warning(
                "connector %r queues writes after failures (on_exhausted: queue), but no idempotency key "
                "reaches its upstream for %s: a queued write whose retry meets a reset, a timeout or a 5xx "
                "fails for good (outcome_unknown) rather than risk applying it twice%s",
                name,
                which,
                "; set idempotency_header if the API honours one" if config.kind == "openapi" else "",
            )


def _limiter(settings: Settings) -> RedisLimiter | None:
    """Rate limits, upstream holds and breakers shared through Redis when ``server.redis`` is set (else: per
    process). The client connects when the hub starts, which fails if Redis does not answer."""
    if settings.server.redis is None:
        return None
    return RedisLimiter.from_url(settings.server.redis, prefix=settings.server.redis_prefix)


def _catalog(settings: Settings) -> Catalog:
    """The catalog with the search settings and the connectors' one-line descriptions."""
    cache = settings.base_dir / ".toolbridge" / "cache" / "embeddings.npz"
    return Catalog(
        semantic=settings.search.semantic,
        embedding_cache=EmbeddingCache(cache) if settings.search.cache else None,
        descriptions={
            name: " ".join(c.description.split()) for name, c in settings.connectors.items() if c.description
        },
    )


_LIMITS = {"max_argument_bytes", "max_result_bytes", "call_timeout"}


def _check_scopes(settings: Settings) -> None:
    for name, agent in settings.agents.items():
        for scope in agent.scopes:
            try:
                Scope.parse(scope)
            except ConfigurationError as exc:
                raise ConfigurationError(f"agents.{name}.scopes: {exc.message}", hint=exc.hint) from exc


def _policy(config: ResilienceSettings, *, long_polls: bool = False) -> ResiliencePolicy:
    """The resilience policy of a connector's ``resilience`` block (every kind has one). ``long_polls``:
    its tools may wait for news (``workspace.changes``, up to 30 s): unless the block sets one, no
    attempt timeout (the default 20 s cut such waits and retried them as timeouts until the call
    deadline, a 504 that opened the breaker)."""
    r, b = config.retry, config.breaker
    attempt_timeout = r.attempt_timeout
    if long_polls and "attempt_timeout" not in r.model_fields_set:
        attempt_timeout = None
    return ResiliencePolicy(
        retry=RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            attempt_timeout=attempt_timeout,
            max_retry_after=r.max_retry_after,
            budget_ratio=r.budget_ratio,
            budget_min=r.budget_min,
            throttle_max_tokens=r.throttle_max_tokens,
            throttle_token_ratio=r.throttle_token_ratio,
        ),
        breaker=BreakerPolicy(
            enabled=b.enabled,
            failure_rate=b.failure_rate,
            window=b.window,
            minimum_calls=b.minimum_calls,
            open_seconds=b.open_seconds,
            half_open_calls=b.half_open_calls,
        ),
        bulkhead=BulkheadPolicy(max_concurrent=config.max_concurrent, max_wait=config.max_queue_wait),
        outlier=OutlierPolicy(**config.outlier.model_dump()),
        rate=config.rate,
        burst=config.burst,
        max_rate_wait=config.max_rate_wait,
        on_exhausted=config.on_exhausted,
    )
