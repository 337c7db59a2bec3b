"""PostgreSQL's ingest in two short statements over arrays (``unnest``): the history rows (each
event's id claimed in ``decision_ids`` first, in the same statement), then the devices' current
states. One statement text per table whatever the batch's size, so that psycopg prepares it once
per connection, and one array per column instead of a parameter per value: the
server's CPU per event is about half that of the multi-row ``VALUES`` SQLAlchemy renders.

The semantics are those of :func:`pyagent.server.store.rows.device_upsert` (the store suite runs
both databases through the same cases): a device's decision moves only forward in decision time
(then decision id), and ``last_seen`` moves forward either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pyagent.server.store.base import DecisionRow
from pyagent.server.store.rows import DECISION_STATE, DEVICE_COLUMNS

_TYPES = {
    "decided_at": "timestamptz",
    "received_at": "timestamptz",
    "last_seen": "timestamptz",
    "allow": "boolean",
}

DECISION_COLUMNS = (
    "decision_id",
    "decided_at",
    "device_id",
    "sender",
    "path",
    "allow",
    "organization",
    "result",
    "report_digest",
    "bundles",
    "chain",
    "received_at",
    "verdict",
    "bans",
    "platform",
    "collected_at",
)


def _unnest(columns: Sequence[str]) -> str:
    arrays = ", ".join(f"%b::{_TYPES.get(name, 'text')}[]" for name in columns)
    return f"SELECT * FROM unnest({arrays})"


_DECISIONS = ", ".join(DECISION_COLUMNS)
#: The batch's ids claimed in ``decision_ids`` (a stored id, whatever its instant, claims nothing),
#: and the history rows of the ids claimed, in one statement.
INSERT_DECISIONS = (
    f"WITH batch ({_DECISIONS}) AS ({_unnest(DECISION_COLUMNS)}), "
    "claimed AS (INSERT INTO decision_ids (decision_id, decided_at) SELECT decision_id, decided_at "
    "FROM batch ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id) "
    f"INSERT INTO decisions ({_DECISIONS}) SELECT {', '.join(f'batch.{c}' for c in DECISION_COLUMNS)} "
    "FROM batch JOIN claimed USING (decision_id) "
    "ON CONFLICT (decision_id, decided_at) DO NOTHING RETURNING decision_id"
)
_NEWER = "(excluded.decided_at, excluded.decision_id) > (d.decided_at, d.decision_id)"
UPSERT_DEVICES = (
    f"INSERT INTO devices AS d ({', '.join(DEVICE_COLUMNS)}) {_unnest(DEVICE_COLUMNS)} "
    "ON CONFLICT (device_id) DO UPDATE SET "
    + ", ".join(
        f"{name} = CASE WHEN {_NEWER} THEN excluded.{name} ELSE d.{name} END" for name in DECISION_STATE
    )
    + ", last_seen = GREATEST(d.last_seen, excluded.last_seen)"
)


#: The reports of a batch already stored, and the new ones stored (in digest order: concurrent
#: batches that share a new report take its index entry in one order).
KNOWN_REPORTS = "SELECT digest FROM reports WHERE digest = ANY(%b::text[])"
INSERT_REPORTS = (
    "INSERT INTO reports (digest, content, first_seen) "
    "SELECT * FROM unnest(%b::text[], %b::bytea[], %b::timestamptz[]) ON CONFLICT (digest) DO NOTHING"
)
#: The columns that take the batch's instant of arrival; the others are the row's attributes.
_ARRIVAL = frozenset({"received_at", "last_seen"})


def _columns(rows: Sequence[DecisionRow], names: Sequence[str], now: datetime) -> tuple[list[Any], ...]:
    """One list per column (as :func:`~pyagent.server.store.rows.decision_values` and
    :func:`~pyagent.server.store.rows.device_values` name them), without a dict per row."""
    return tuple(
        [now] * len(rows) if name in _ARRIVAL else [getattr(row, name) for row in rows] for name in names
    )


def known_reports(conn: Connection, digests: Sequence[str]) -> set[str]:
    return {digest for (digest,) in conn.exec_driver_sql(KNOWN_REPORTS, (list(digests),))}


def insert_reports(conn: Connection, contents: dict[str, bytes], now: datetime) -> None:
    digests = sorted(contents)
    conn.exec_driver_sql(INSERT_REPORTS, (digests, [contents[d] for d in digests], [now] * len(digests)))


def insert_decisions(conn: Connection, rows: Sequence[DecisionRow], now: datetime) -> list[str]:
    """Insert the history rows whose decision id is not stored yet (``rows`` holds each id once);
    the ids of those inserted."""
    result = conn.exec_driver_sql(INSERT_DECISIONS, _columns(rows, DECISION_COLUMNS, now))
    return [decision_id for (decision_id,) in result]


def upsert_devices(conn: Connection, rows: Sequence[DecisionRow], now: datetime) -> None:
    """Move each device's state to its row (one row per device) where that row is newer."""
    conn.exec_driver_sql(UPSERT_DEVICES, _columns(rows, DEVICE_COLUMNS, now))
