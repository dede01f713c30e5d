"""``kind: graphql`` settings → a :class:`GraphQLConnector`.

A schema that cannot be read (a missing file, an endpoint that refuses introspection) does not stop the
hub, as an OpenAPI document that cannot be used does not: the connector is built without tools, its
``status`` (health) and the log carry the reason, and every other connector keeps serving.
"""

from __future__ import annotations

import logging

from toolbridge.connectors.graphql import GraphQLConnector
from toolbridge.errors import ConfigurationError
from toolbridge.settings import GraphQLConnectorSettings, Settings

__all__ = ["graphql_connector"]

logger = logging.getLogger("toolbridge.connectors.graphql")


def graphql_connector(name: str, config: GraphQLConnectorSettings, settings: Settings) -> GraphQLConnector:
    try:
        return _build(name, config, settings)
    except ConfigurationError as exc:
        logger.warning("connector %r has no tools: %s", name, exc)
        return GraphQLConnector.failed(name, config.endpoint, str(exc))


def _build(name: str, config: GraphQLConnectorSettings, settings: Settings) -> GraphQLConnector:
    schema = None if config.schema_ is None else (settings.base_dir / config.schema_).resolve()
    header = None if config.idempotency_header.lower() == "none" else config.idempotency_header
    return GraphQLConnector.from_schema(
        name,
        config.endpoint,
        schema,
        max_schema_bytes=config.max_schema_bytes,
        description=config.description,
        selection_depth=config.selection_depth,
        include=config.include,
        exclude=config.exclude,
        timeout=config.timeout,
        max_response_bytes=config.max_response_bytes,
        idempotency_header=header,
        allow_hosts=config.allow_hosts,
        cross_origin=config.cross_origin,
    )
