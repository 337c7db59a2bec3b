"""PostgreSQL: the decision history partitioned by day, partitions made on demand and dropped by
retention (:mod:`pyagent.server.store.retention`). A partition is named ``decisions_pYYYYMMDD`` and
holds ``[day, day + 1)`` in UTC."""

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
                lock(conn)
                for day in days:
                    create(conn, day)
            self.days |= set(days)

    def forget(self, instants: Iterable[datetime]) -> None:
        """Forget the days of ``instants``: a partition may have gone (another replica's retention)."""
        self.days -= {instant.astimezone(UTC).date() for instant in instants}


def is_missing(err: Exception) -> bool:
    """Whether ``err`` is PostgreSQL's "no partition of relation "decisions" found for row" (23514, a
    check violation of the history's table, whose only check is its partitioning: whatever the
    server's language)."""
    orig = getattr(err, "orig", None)
    table = getattr(getattr(orig, "diag", None), "table_name", None)
    return getattr(orig, "sqlstate", None) == "23514" and table == "decisions"


def create(conn: Connection, day: date) -> None:
    """Make ``day``'s partition, if it is not there (under the lock, :func:`lock`)."""
    end = day + timedelta(days=1)
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF decisions "
        f"FOR VALUES FROM ('{day.isoformat()}T00:00:00+00:00') TO ('{end.isoformat()}T00:00:00+00:00')"
    )


def lock(conn: Connection) -> None:
    """The transaction's lock on making and dropping partitions (replicas may race)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})


def partition_name(day: date) -> str:
    return f"decisions_p{day:%Y%m%d}"


def existing(conn: Connection) -> dict[str, date]:
    """The partitions there are, by name, and the day each holds."""
    query = text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'decisions'"
    )
    names = conn.execute(query).scalars().all()
    found = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            found[name] = datetime.strptime(match.group(1), "%Y%m%d").date()
    return found
