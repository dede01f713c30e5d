"""Alembic environment: toolbridge always passes the connection in (see storage/_database.py)."""

from __future__ import annotations

from alembic import context

from toolbridge.storage._tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
