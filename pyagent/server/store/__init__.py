"""The server's store: one interface (:class:`~pyagent.server.store.base.Store`), one SQLAlchemy Core
implementation for SQLite and PostgreSQL, migrations as code."""

from __future__ import annotations

from pathlib import Path

from pyagent.server.store.base import Store, StoreConflict, StoreError
from pyagent.server.store.engine import resolve_url

__all__ = ["Store", "StoreConflict", "StoreError", "open_store"]


def open_store(
    db: str | None = None, *, state_dir: Path | None = None, migrate: bool = True, create: bool = True
) -> Store:
    """The store at ``db`` (``--db``, ``PYAGENT_SERVER_DB``, or SQLite in the state dir), migrated;
    without ``create``, a SQLite file must exist already."""
    from pyagent.server.store.sql import SqlStore

    store = SqlStore(resolve_url(db, state_dir, create=create))
    if migrate:
        store.migrate()
    return store
