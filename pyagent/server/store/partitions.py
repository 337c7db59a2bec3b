"""PostgreSQL: the decision history partitioned by day, partitions made on demand and dropped by
retention. A partition is named ``decisions_pYYYYMMDD`` and holds ``[day, day + 1)`` in UTC."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text

_NAME = re.compile(r"^decisions_p(\d{8})$")
#: Advisory lock key taken while creating or dropping partitions (replicas may race).
_LOCK = 7270302
#: Partitions made per transaction: each holds its locks until the commit, and a batch dated over
#: 1,500 days had run PostgreSQL out of lock slots (``max_locks_per_transaction``, 64 by default).
_PER_TRANSACTION = 32


class PartitionCache:
    """Days known to have a partition in this process: a cache of a fact, re-checked on miss."""

    def __init__(self) -> None:
        self.days: set[date] = set()

    def ensure(self, engine: Engine, instants: Iterable[datetime]) -> None:
        missing = sorted({instant.astimezone(UTC).date() for instant in instants} - self.days)
        for start in range(0, len(missing), _PER_TRANSACTION):
            days = missing[start : start + _PER_TRANSACTION]
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
                for day in days:
                    end = day + timedelta(days=1)
                    conn.exec_driver_sql(
                        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF decisions "
                        f"FOR VALUES FROM ('{day.isoformat()}T00:00:00+00:00') "
                        f"TO ('{end.isoformat()}T00:00:00+00:00')"
                    )
            self.days |= set(days)


def partition_name(day: date) -> str:
    return f"decisions_p{day:%Y%m%d}"


def existing(engine: Engine) -> dict[str, date]:
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'decisions'"
    )
    with engine.connect() as conn:
        names = conn.execute(query).scalars().all()
    found = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            found[name] = datetime.strptime(match.group(1), "%Y%m%d").date()
    return found


#: A history row that is its device's current decision (``devices`` by its primary key).
_CURRENT = (
    "EXISTS (SELECT 1 FROM devices d WHERE d.device_id = p.device_id AND d.decision_id = p.decision_id)"
)


def drop_before(engine: Engine, before: datetime, cache: PartitionCache | None) -> int:
    """Drop every partition whose whole day lies before ``before``, and its events' rows of
    ``decision_ids``; return how many partitions.

    A partition that holds a device's current decision (a device silent since then) keeps that row
    and loses the others: the history at any later instant then still counts the device, stale, as
    its current state does, rather than forgetting it."""
    cutoff = before.astimezone(UTC).date()
    doomed = sorted((day, name) for name, day in existing(engine).items() if day < cutoff)
    kept: set[date] = set()
    if doomed:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            kept = {day for day, name in doomed if not _drop(conn, name)}
    if cache is not None:
        cache.days = {day for day in cache.days if day >= cutoff or day in kept}
    return len(doomed) - len(kept)


def _drop(conn: Connection, name: str) -> bool:
    """Drop partition ``name`` and its rows of ``decision_ids`` (found by its rows: no index on the
    instant); or, when it holds a current decision, delete all its other rows. True: dropped."""
    current = conn.exec_driver_sql(f"SELECT count(*) FROM {name} p WHERE {_CURRENT}").scalar()
    but_current = f" AND NOT {_CURRENT}" if current else ""
    conn.exec_driver_sql(
        f"DELETE FROM decision_ids i USING {name} p "
        f"WHERE i.decision_id = p.decision_id AND i.decided_at = p.decided_at{but_current}"
    )
    if current:
        conn.exec_driver_sql(f"DELETE FROM {name} p WHERE NOT {_CURRENT}")
        return False
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    return True
