"""Credential tables (SQLAlchemy Core), created by migration ``0004_credentials`` (``owner``: ``0009``).

The database holds only ciphertext: ``vault_secrets`` rows are AES-GCM envelopes; ``vault_fence``
(``0014``) names the master key the last rotation moved to, the fence every vault write holds
(``_vault.py``). ``connections`` holds state and metadata; its token set lives in the vault under
``connection:<id>``, and ``token_version`` is the compare-and-set fence every writer of that token set
must present.
"""

from __future__ import annotations

import sqlalchemy as sa

from toolbridge.storage import metadata

__all__ = ["connections", "oauth_states", "vault_fence", "vault_secrets"]

vault_secrets = sa.Table(
    "vault_secrets",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_vault_secrets_key_id", vault_secrets.c.key_id)

vault_fence = sa.Table(  # migration 0014: one row (id 1); key_id '' until the first rotation
    "vault_fence",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
)

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("scheme", sa.String(32), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("token_version", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("refresh_owner", sa.String(64), nullable=True),
    sa.Column("refresh_until", sa.Float, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # the principal id the connection belongs to; '' for one an operator shares
    sa.Column("owner", sa.String(200), nullable=False, server_default=""),
    sa.UniqueConstraint("connector", "owner", "account", name="uq_connections_connector_owner_account"),
)

oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("connector", sa.String(64), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("redirect_uri", sa.String(2000), nullable=False),
    sa.Column("issuer", sa.String(2000), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("used_at", sa.Float, nullable=True),
    sa.Column("owner", sa.String(200), nullable=False, server_default=""),
)
