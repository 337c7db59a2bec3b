"""A store migrated to an earlier revision, with the partitions its old rows will need: for tests of
what a migration does to data stored before it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from alembic import command

from pyagent.server.store import open_store
from pyagent.server.store.migrate import alembic_config
from pyagent.server.store.partitions import PartitionCache
from pyagent.server.store.sql import SqlStore


def store_at(db_url: str, revision: str, instants: Sequence[datetime] = ()) -> tuple[SqlStore, Any]:
    """The store of ``db_url`` at ``revision`` and the alembic config to move it on with; on PostgreSQL
    the partitions of ``instants`` made, as ingest makes them."""
    store = open_store(db_url, migrate=False)
    assert isinstance(store, SqlStore)
    config = alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    if store.dialect == "postgresql" and instants:
        PartitionCache().ensure(store.engine, instants)
    return store, config
