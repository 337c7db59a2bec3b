"""Alembic environment: always given a connection by :func:`pyagent.server.store.migrate.upgrade`."""

from __future__ import annotations

from alembic import context

from pyagent.server.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
