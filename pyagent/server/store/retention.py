"""Retention (``retention_days``): the decision history before a cutoff goes, except each device's
current decision, whatever its age. A device silent since before the cutoff is then still counted,
stale, by ``?at=`` and ``history`` at any later instant, as the current state counts it, rather than
forgotten there while the current state still has it.

SQLite deletes the rows (and their ``decision_ids``). PostgreSQL drops whole daily partitions under
the partitions' lock and the history's table lock (the parent's, in SHARE mode: writes wait, reads do
not, until the DROP; then the partition's: the order in which an ingest takes them), one partition
per transaction, so that no replica's ingest writes into one meanwhile: a partition that
holds current decisions is dropped and made again with those rows alone, so that the cost is that
of the rows kept, not of the rows that go."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, and_, delete, exists, select, text

from pyagent.server.store import partitions
from pyagent.server.store.schema import decision_ids, decisions, devices


def prune_sqlite(conn: Connection, before: datetime) -> int:
    """Delete the history rows before ``before`` that are no device's current decision, and their
    ids; returns how many rows."""
    current = exists().where(
        and_(devices.c.device_id == decisions.c.device_id, devices.c.decision_id == decisions.c.decision_id)
    )
    doomed = select(decisions.c.decision_id).where(decisions.c.decided_at < before, ~current)
    conn.execute(delete(decision_ids).where(decision_ids.c.decision_id.in_(doomed)))
    return int(conn.execute(delete(decisions).where(decisions.c.decided_at < before, ~current)).rowcount)


#: A row of partition ``p`` that is its device's current decision (``devices`` by its primary key).
_CURRENT = (
    "EXISTS (SELECT 1 FROM devices d WHERE d.device_id = p.device_id AND d.decision_id = p.decision_id)"
)


def prune_postgres(engine: Engine, before: datetime, cache: partitions.PartitionCache | None) -> int:
    """Drop every partition whose whole day lies before ``before``, with its events' rows of
    ``decision_ids``, keeping its current decisions; returns how many partitions went whole."""
    cutoff = before.astimezone(UTC).date()
    kept: set[date] = set()
    dropped = 0
    with engine.connect() as conn:
        doomed = sorted((day, name) for name, day in partitions.existing(conn).items() if day < cutoff)
    for day, name in doomed:  # one transaction each: the history is locked a partition's time at most
        with engine.begin() as conn:
            partitions.lock(conn)
            if conn.execute(text("SELECT to_regclass(:name)"), {"name": name}).scalar() is None:
                continue  # another replica pruned it meanwhile
            # the parent first, as an ingest locks it before a partition (no deadlock with one); SHARE
            # holds writes back, not reads, until the DROP itself
            conn.exec_driver_sql("LOCK TABLE decisions IN SHARE MODE")
            if _drop(conn, name, day):
                dropped += 1
            else:
                kept.add(day)
    if cache is not None:
        cache.days = {day for day in cache.days if day >= cutoff or day in kept}
    return dropped


def _drop(conn: Connection, name: str, day: date) -> bool:
    """Drop partition ``name`` and its rows' ``decision_ids`` (found by its rows: no index on the
    instant); make it again with its current decisions if it held any. True: it went whole."""
    conn.exec_driver_sql(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE")
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE pyagent_kept AS SELECT p.* FROM {name} p WHERE {_CURRENT}")
    kept = conn.exec_driver_sql("SELECT count(*) FROM pyagent_kept").scalar()
    conn.exec_driver_sql(
        f"DELETE FROM decision_ids i USING {name} p "
        f"WHERE i.decision_id = p.decision_id AND i.decided_at = p.decided_at AND NOT {_CURRENT}"
    )
    conn.exec_driver_sql(f"DROP TABLE {name}")
    if kept:
        partitions.create(conn, day)
        conn.exec_driver_sql(f"INSERT INTO {name} SELECT * FROM pyagent_kept")
    conn.exec_driver_sql("DROP TABLE pyagent_kept")
    return not kept
