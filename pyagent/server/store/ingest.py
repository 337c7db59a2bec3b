"""A batch of decisions in one transaction, on either database: the reports not stored yet, the
events whose ``decision_id`` is not stored yet (``decision_ids`` decides, whatever the event's
instant), the chain fields of agents' copies of decisions stored from their OPA's, and the devices'
current states those events move forward.

PostgreSQL takes the bulk path of :mod:`pyagent.server.store.bulk` (arrays, one statement per
table); SQLite the executemany SQLAlchemy renders. The store suite runs both through the same cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from isal import isal_zlib
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pyagent.server.store import bulk, chains
from pyagent.server.store.base import DecisionRow, IngestResult
from pyagent.server.store.rows import decision_values, device_upsert, device_values, newest_per_device
from pyagent.server.store.schema import decision_ids, decisions, reports

#: Decision ids looked up per statement on SQLite (its bound on parameters is 32,766 by default).
_IDS_PER_READ = 1000


def first_per_id(rows: Sequence[DecisionRow]) -> list[DecisionRow]:
    """One row per decision id (its first in the batch), in decision-id order: concurrent batches
    that share ids take their row locks in one order (no deadlock)."""
    first: dict[str, DecisionRow] = {}
    for row in rows:
        first.setdefault(row.decision_id, row)
    return [first[decision_id] for decision_id in sorted(first)]


def ingest(
    conn: Connection, rows: Sequence[DecisionRow], reports_by_digest: Mapping[str, bytes], now: datetime
) -> IngestResult:
    """Store what is new of the batch in the open transaction ``conn``."""
    postgres = conn.dialect.name == "postgresql"
    insert_fn = postgresql.insert if postgres else sqlite.insert
    if reports_by_digest:  # compress and write only inventories not stored yet
        if postgres:
            known = bulk.known_reports(conn, list(reports_by_digest))
        else:
            query = select(reports.c.digest).where(reports.c.digest.in_(list(reports_by_digest)))
            known = set(conn.execute(query).scalars())
        unseen = {
            d: isal_zlib.compress(c, 1)  # zlib format
            for d, c in reports_by_digest.items()
            if d not in known
        }
        if unseen and postgres:
            bulk.insert_reports(conn, unseen, now)
        elif unseen:
            new_reports = [{"digest": d, "content": c, "first_seen": now} for d, c in unseen.items()]
            conn.execute(insert_fn(reports).on_conflict_do_nothing(index_elements=["digest"]), new_reports)
    candidates = first_per_id(rows)
    if postgres:  # one statement over arrays: see store.bulk
        new = set(bulk.insert_decisions(conn, candidates, now))
    else:
        new = _sqlite_insert_decisions(conn, candidates, now)
    chains.check(conn, candidates, new, now)  # (first: it tells records sent again by their stored chain)
    _add_chains(conn, [row for row in candidates if row.decision_id not in new and row.chain is not None])
    newest = newest_per_device(row for row in candidates if row.decision_id in new)
    if newest and postgres:
        bulk.upsert_devices(conn, newest, now)
    elif newest:
        conn.execute(device_upsert(insert_fn), [device_values(row, now) for row in newest])
    return IngestResult(len(new), len(rows) - len(new))


def _add_chains(conn: Connection, duplicates: Sequence[DecisionRow]) -> None:
    """An agent's copy of a decision stored first from its OPA's (``--engine opa``: one decision id)
    brings the chain fields the OPA's event lacks (CONTRACT 6.3): they are added to the stored row
    when it has none, and only to the row of the same device and instant (never replacing any)."""
    if not duplicates:
        return
    statement = (
        update(decisions)
        .where(
            decisions.c.decision_id == bindparam("b_id"),
            decisions.c.decided_at == bindparam("b_at"),
            decisions.c.device_id == bindparam("b_device"),
            decisions.c.chain.is_(None),
        )
        .values(chain=bindparam("b_chain"))
    )
    conn.execute(
        statement,
        [
            {"b_id": r.decision_id, "b_at": r.decided_at, "b_device": r.device_id, "b_chain": r.chain}
            for r in duplicates
        ],
    )


def _sqlite_insert_decisions(conn: Connection, rows: Sequence[DecisionRow], now: datetime) -> set[str]:
    """The ids already claimed read first, then the others claimed and their rows written, each by a
    plain executemany: exact, as the transaction holds SQLite's write lock from its BEGIN IMMEDIATE
    (no other writer between the read and the writes)."""
    ids = [row.decision_id for row in rows]
    stored: set[str] = set()
    for first in range(0, len(ids), _IDS_PER_READ):  # under SQLite's bound on a statement's parameters
        chunk = ids[first : first + _IDS_PER_READ]
        query = select(decision_ids.c.decision_id).where(decision_ids.c.decision_id.in_(chunk))
        stored.update(conn.execute(query).scalars())
    fresh = [row for row in rows if row.decision_id not in stored]
    if fresh:
        claimed = [{"decision_id": row.decision_id, "decided_at": row.decided_at} for row in fresh]
        conn.execute(sqlite.insert(decision_ids), claimed)
        conn.execute(
            sqlite.insert(decisions).on_conflict_do_nothing(index_elements=["decision_id", "decided_at"]),
            [decision_values(row, now) for row in fresh],
        )
    return {row.decision_id for row in fresh}
