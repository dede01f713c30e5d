"""``kind: openapi`` settings → an :class:`OpenAPIConnector`; a deprecated ``auth:`` block → a connection.

A document that cannot be used does not stop the hub: the connector is built without tools, its report
carries the error (``toolbridge tools list`` and the connector's health show it, the log has it with its
traceback when it was not a foreseen configuration error), and every other connector keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from toolbridge.assembly._legacy_auth import legacy_connection
from toolbridge.connectors.openapi._connector import OpenAPIConnector
from toolbridge.connectors.openapi._ingest import IngestOptions, OperationFilter, OperationOverride
from toolbridge.connectors.openapi._paginate import Pagination
from toolbridge.errors import ConfigurationError
from toolbridge.settings import ApiKeyConnection, OpenAPIConnectorSettings, OpenAPIFilterSettings, Settings

if TYPE_CHECKING:
    from toolbridge.credentials import CredentialManager

__all__ = ["openapi_connector"]

logger = logging.getLogger("toolbridge.connectors.openapi")


def openapi_connector(
    name: str,
    config: OpenAPIConnectorSettings,
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    credentials: CredentialManager | None = None,
) -> OpenAPIConnector:
    """The connector; its ``auth:`` block, if any, becomes a binding of ``credentials`` (see
    :mod:`._legacy_auth`). Without ``credentials`` (``toolbridge tools list``) the block is only checked."""
    spec = spec_location(config.spec, settings)
    try:
        connector = OpenAPIConnector.from_spec(
            name,
            spec,
            options=ingest_options(config),
            max_spec_bytes=config.max_spec_bytes,
            spec_root=None if config.spec_root is None else settings.base_dir / config.spec_root,
            cache_dir=settings.base_dir / ".toolbridge" / "cache" / "openapi" if config.cache else None,
            base_url=config.base_url,
            timeout=config.timeout,
            max_response_bytes=config.max_response_bytes,
            max_pages=config.pagination.max_pages,
            pagination=Pagination(config.pagination.cursor_field, config.pagination.cursor_param),
            idempotency_header=_key_header(config),
            allow_hosts=config.allow_hosts,
            cross_origin=config.cross_origin,
        )
    except ConfigurationError as exc:
        logger.warning("connector %r has no tools: %s", name, exc)
        return OpenAPIConnector.failed(name, spec, f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    except Exception as exc:  # the fault boundary of one connector: a document no rule foresaw
        logger.error("connector %r has no tools: reading %s raised", name, spec, exc_info=True)
        return OpenAPIConnector.failed(name, spec, _unforeseen(exc))
    try:
        legacy = legacy_connection(name, config, connector.security_schemes, settings, environ=environ)
    except ConfigurationError as exc:
        logger.warning("connector %r has no tools: %s", name, exc)
        return OpenAPIConnector.failed(name, spec, f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    check_connections(connector, config)
    check_key_header(connector, config)
    if legacy is not None and credentials is not None:
        from toolbridge.assembly._credentials import binding_of

        credentials.add_binding(
            name, binding_of(legacy, {}, settings.base_dir, where=f"connectors.{name}.auth")
        )
    return connector


def _key_header(config: OpenAPIConnectorSettings) -> str | None:
    return None if config.idempotency_header.lower() == "none" else config.idempotency_header


def check_key_header(connector: OpenAPIConnector, config: OpenAPIConnectorSettings) -> None:
    """Warn when keys go to an upstream whose document declares no idempotency header."""
    header = _key_header(config)
    writes = any(not tool.annotations.read_only for tool in connector.tools())
    if header is None or not writes or connector.declares_keys:  # keys go with writes only
        return
    how = "as configured" if "idempotency_header" in config.model_fields_set else "by default"
    logger.warning(
        "connector %r sends idempotency keys in header %s (%s), but its document declares no idempotency "
        "header: if the upstream ignores it, a keyed write retried after a lost answer may apply twice. "
        "Set 'idempotency_header: none' for an upstream that takes no keys (keyed writes are then not "
        "retried once sent).",
        connector.name,
        header,
        how,
    )


def _unforeseen(exc: Exception) -> str:
    detail = str(exc)[:300] or "no detail"
    return (
        f"the document could not be read ({type(exc).__name__}: {detail}); "
        "fix the document where it breaks the OpenAPI specification, or report it as a toolbridge bug"
    )


def check_connections(connector: OpenAPIConnector, config: OpenAPIConnectorSettings) -> None:
    """A ``connections:`` block whose scheme fits none of the document's security schemes is an error."""
    wanted = config.connections
    if wanted is None:
        return
    where = f"connectors.{connector.name}.connections"
    if isinstance(wanted, ApiKeyConnection):
        connector.check_connection(wanted.scheme, name=wanted.name, location=wanted.location, where=where)
    else:
        connector.check_connection(wanted.scheme, where=where)


def spec_location(spec: str, settings: Settings) -> str:
    """URLs as they are; paths relative to the config file's folder."""
    if spec.startswith(("http://", "https://", "file://")):
        return spec
    return str((settings.base_dir / spec).resolve())


def ingest_options(config: OpenAPIConnectorSettings) -> IngestOptions:
    return IngestOptions(
        include=_filter(config.include),
        exclude=_filter(config.exclude),
        overrides={key: OperationOverride(**value.model_dump()) for key, value in config.operations.items()},
        description_max_chars=config.description_max_chars,
        max_pages=config.pagination.max_pages,
    )


def _filter(config: OpenAPIFilterSettings | None) -> OperationFilter:
    if config is None:
        return OperationFilter()
    return OperationFilter(
        tuple(config.tags), tuple(config.paths), tuple(config.methods), tuple(config.operations)
    )
