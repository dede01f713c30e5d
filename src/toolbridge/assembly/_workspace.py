"""``kind: workspace`` settings → a :class:`WorkspaceConnector` (called by ``build_hub``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolbridge.credentials._secret import SecretRef, resolve_static
from toolbridge.errors import ConfigurationError
from toolbridge.storage import sqlite_file
from toolbridge.workspace._blobs import BlobStore, LocalBlobStore, S3BlobStore
from toolbridge.workspace._connector import WorkspaceConnector
from toolbridge.workspace._import import HttpImportSource, Importer, ImportPolicy
from toolbridge.workspace._model import Role

if TYPE_CHECKING:
    from toolbridge.assembly._kinds import Parts
    from toolbridge.settings import Settings, WorkspaceConnectorSettings

__all__ = ["workspace_connector"]

_RESULT_OVERHEAD = 4096


def workspace_connector(name: str, config: WorkspaceConnectorSettings, parts: Parts) -> WorkspaceConnector:
    settings = parts.settings
    where = f"connectors.{name}"
    secret = _signing_secret(config.signing_secret, settings.base_dir)
    if secret is not None and len(secret) < 24:
        raise ConfigurationError(
            f"{where}.signing_secret is shorter than 24 characters", hint="use a long random string"
        )
    server = settings.server
    public_url = server.public_url or f"http://{server.host}:{server.port}"
    imports = config.url_import
    importer = (
        Importer(
            [
                HttpImportSource(
                    policy=ImportPolicy(
                        allowed_ports=None if imports.allowed_ports is None else tuple(imports.allowed_ports),
                        max_bytes=imports.max_bytes,
                        timeout=imports.timeout,
                        allow_loopback=imports.allow_loopback,
                    )
                )
            ]
        )
        if imports.enabled
        else None
    )
    return WorkspaceConnector(
        name,
        database=parts.database,
        blobs=_blobs(config, settings),
        workspace=config.workspace,
        members={f"agent:{agent}": Role.parse(role) for agent, role in config.members.items()},
        quota_bytes=config.quota_bytes,
        credits_per_agent=config.credits_per_agent,
        public_url=public_url,
        signing_secret=secret,
        url_ttl=config.url_ttl,
        inline_bytes=min(config.inline_bytes, settings.limits.max_result_bytes - _RESULT_OVERHEAD),
        default_ttl=config.lease_ttl,
        max_ttl=config.max_lease_ttl,
        importer=importer,
        events=parts.events,
    )


def _blobs(config: WorkspaceConnectorSettings, settings: Settings) -> BlobStore:
    if config.s3 is not None:
        s3 = config.s3
        return S3BlobStore(
            s3.bucket,
            prefix=s3.prefix,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
        )
    return LocalBlobStore(blob_folder(config.blob_path, settings))


def blob_folder(blob_path: str | None, settings: Settings) -> Path:
    """Where file contents live: ``blob_path`` against the config file's folder, or by default ``blobs``
    beside the SQLite database (so a database given as an absolute path keeps its files with it)."""
    if blob_path is not None:
        return settings.base_dir / blob_path
    database = sqlite_file(settings.server.database)
    return database.parent / "blobs" if database is not None else settings.base_dir / ".toolbridge" / "blobs"


def _signing_secret(value: str | None, base_dir: Path) -> bytes | None:
    """The URL-signing key: an ``env:``/``file:`` reference is read (it was taken as the key itself, so a
    reference to an unset variable signed every URL with a string anyone can read in the file), else the
    value as written."""
    if value is None:
        return None
    if SecretRef.is_reference(value):
        return resolve_static(SecretRef.parse(value), base_dir=base_dir).reveal().encode()
    return value.encode()
