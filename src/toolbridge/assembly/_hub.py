"""Settings → Hub. The only place that turns configuration into objects."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from toolbridge.assembly._credentials import build_credentials
from toolbridge.assembly._events import build_events
from toolbridge.catalog import ToolAnnotations
from toolbridge.connectors.python import PythonConnector, import_callable
from toolbridge.errors import ConfigurationError
from toolbridge.hub import Hub, Limits
from toolbridge.policy import Scope
from toolbridge.resilience import BreakerPolicy, BulkheadPolicy, ResiliencePolicy, RetryPolicy
from toolbridge.resilience._outbox import Outbox
from toolbridge.settings import (
    McpConnectorSettings,
    OpenAPIConnectorSettings,
    PythonConnectorSettings,
    PythonToolSettings,
    ResilienceSettings,
    Settings,
    WorkspaceConnectorSettings,
)
from toolbridge.storage import Database
from toolbridge.worker import add_outbox_tool

if TYPE_CHECKING:
    from toolbridge.credentials import KeySource

__all__ = ["build_hub"]


def build_hub(settings: Settings, *, keys: KeySource | None = None) -> Hub:
    limits = Limits(
        max_argument_bytes=settings.limits.max_argument_bytes,
        max_result_bytes=settings.limits.max_result_bytes,
        call_timeout=settings.limits.call_timeout,
    )
    for name, agent in settings.agents.items():
        for scope in agent.scopes:
            try:
                Scope.parse(scope)
            except ConfigurationError as exc:
                raise ConfigurationError(f"agents.{name}.scopes: {exc.message}", hint=exc.hint) from exc
    database = Database(settings.server.database)
    hub = Hub(
        database=database,
        credentials=build_credentials(settings, database, keys),
        limits=limits,
        agents={name: agent.scopes for name, agent in settings.agents.items()},
        agent_rates={name: agent.rate for name, agent in settings.agents.items() if agent.rate},
        tool_modes={name: agent.tool_mode for name, agent in settings.agents.items()},
    )
    hub.outbox = Outbox(database, **settings.outbox.model_dump())
    for name, connector in settings.connectors.items():
        if isinstance(connector, WorkspaceConnectorSettings):
            from toolbridge.assembly._workspace import workspace_connector

            hub.add_connector(workspace_connector(name, connector, settings, hub), policy=_policy(connector))
        elif isinstance(connector, McpConnectorSettings):
            from toolbridge.assembly._mcp import mcp_connector

            hub.add_connector(mcp_connector(name, connector, settings, hub), policy=_policy(connector))
        elif isinstance(connector, OpenAPIConnectorSettings):
            from toolbridge.assembly._openapi import openapi_connector

            hub.add_connector(openapi_connector(name, connector, settings), policy=_policy(connector))
        else:
            hub.add_connector(_python_connector(name, connector, settings), policy=_policy(connector))
    build_events(settings, hub)
    if any(
        getattr(getattr(c, "resilience", None), "on_exhausted", "fail") == "queue"
        for c in settings.connectors.values()
    ):
        add_outbox_tool(hub)
    if settings.capabilities:  # last: capabilities are checked against every other connector's tools
        from toolbridge.router._build import build_router

        build_router(settings, hub)
    if settings.pipelines:  # after capabilities: its load-time checks need every tool, theirs included
        from toolbridge.assembly._pipelines import build_pipelines

        build_pipelines(settings, hub)
    return hub


def _policy(connector: object) -> ResiliencePolicy | None:
    """The resilience policy of any connector kind (every kind has a ``resilience`` block)."""
    config = getattr(connector, "resilience", None)
    if not isinstance(config, ResilienceSettings):
        return None
    r, b = config.retry, config.breaker
    return ResiliencePolicy(
        retry=RetryPolicy(
            max_attempts=r.max_attempts,
            base_delay=r.base_delay,
            max_delay=r.max_delay,
            attempt_timeout=r.attempt_timeout,
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
        rate=config.rate,
        burst=config.burst,
        max_rate_wait=config.max_rate_wait,
        on_exhausted=config.on_exhausted,
    )


def _python_connector(name: str, config: PythonConnectorSettings, settings: Settings) -> PythonConnector:
    folder = str(
        (settings.base_dir / config.module_path).resolve() if config.module_path else settings.base_dir
    )
    if folder not in sys.path:
        sys.path.insert(0, folder)
    connector = PythonConnector(name)
    for i, tool in enumerate(config.tools):
        _add_tool(connector, tool, f"connectors.{name}.tools[{i}]")
    return connector


def _add_tool(connector: PythonConnector, tool: PythonToolSettings, where: str) -> None:
    annotations = ToolAnnotations(
        read_only=tool.read_only,
        destructive=tool.destructive,
        idempotent=tool.idempotent or tool.read_only,
        open_world=False,
    )
    try:
        fn = import_callable(tool.function)
        connector.add(
            fn, name=tool.name, description=tool.description, annotations=annotations, title=tool.title
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}", hint=exc.hint) from exc
