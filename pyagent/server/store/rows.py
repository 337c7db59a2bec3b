"""Rows for the store's writes: a decision's history row, its device's current state, and the upsert
that moves a device's state only forward in decision time; and the stored columns read back
(:func:`utc`, :func:`read_json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, or_

from pyagent.redact import redact_strings
from pyagent.server.store.base import DecisionRow
from pyagent.server.store.schema import devices


def decision_values(row: DecisionRow, now: datetime) -> dict[str, Any]:
    return {
        "decision_id": row.decision_id,
        "decided_at": row.decided_at,
        "device_id": row.device_id,
        "sender": row.sender,
        "path": row.path,
        "allow": row.allow,
        "organization": row.organization,
        "result": row.result,
        "report_digest": row.report_digest,
        "bundles": row.bundles,
        "chain": row.chain,
        "received_at": now,
        "verdict": row.verdict,
        "bans": row.bans,
        "platform": row.platform,
        "collected_at": row.collected_at,
    }


def device_values(row: DecisionRow, now: datetime) -> dict[str, Any]:
    return {
        "device_id": row.device_id,
        "organization": row.organization,
        "platform": row.platform,
        "allow": row.allow,
        "decision_id": row.decision_id,
        "decided_at": row.decided_at,
        "sender": row.sender,
        "result": row.result,
        "report_digest": row.report_digest,
        "bundles": row.bundles,
        "last_seen": now,
        "verdict": row.verdict,
        "bans": row.bans,
    }


def newest_per_device(rows: Iterable[DecisionRow]) -> list[DecisionRow]:
    """One row per device (the newest by instant, then decision id): an upsert may touch a row once.
    In device-id order: concurrent batches that share devices (two replicas, say) take their row locks
    in one order; in the order of the batches, two with the devices the other way round deadlocked."""
    newest: dict[str, DecisionRow] = {}
    for row in rows:
        seen = newest.get(row.device_id)
        if seen is None or (row.decided_at, row.decision_id) > (seen.decided_at, seen.decision_id):
            newest[row.device_id] = row
    return [newest[device_id] for device_id in sorted(newest)]


#: A device's state: its id, its newest decision's columns (:data:`DECISION_STATE`), ``last_seen``.
DEVICE_COLUMNS = (
    "device_id",
    "organization",
    "platform",
    "allow",
    "decision_id",
    "decided_at",
    "sender",
    "result",
    "report_digest",
    "bundles",
    "last_seen",
    "verdict",
    "bans",
)
#: What a newer decision replaces in a device's state (``last_seen`` is handled apart).
DECISION_STATE = tuple(name for name in DEVICE_COLUMNS if name not in ("device_id", "last_seen"))


def device_upsert(insert_fn: Any) -> Any:
    """Insert a device, or update it when the decision is newer than its current one; ``last_seen``
    moves forward either way (a late upload is still a sign of life)."""
    statement = insert_fn(devices)
    excluded = statement.excluded
    newer = or_(
        excluded.decided_at > devices.c.decided_at,
        and_(excluded.decided_at == devices.c.decided_at, excluded.decision_id > devices.c.decision_id),
    )
    changes: dict[str, Any] = {
        name: case((newer, excluded[name]), else_=devices.c[name]) for name in DECISION_STATE
    }
    changes["last_seen"] = case(
        (excluded.last_seen > devices.c.last_seen, excluded.last_seen), else_=devices.c.last_seen
    )
    return statement.on_conflict_do_update(index_elements=["device_id"], set_=changes)


def utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite keeps them naive, in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_json(text: str | None) -> Any:
    """A stored JSON column's value (None for SQL NULL)."""
    return None if text is None else json.loads(text)


def stored_status(
    instance_id: str, bundles: str | None, errors: str | None, last_seen: datetime
) -> dict[str, Any]:
    """A sender's stored status message as readers see it: its bundles and errors redacted (again, for
    what was stored before a redaction rule was added), its last seen in UTC."""
    return {
        "instance_id": instance_id,
        "bundles": redact_strings(read_json(bundles)),
        "errors": redact_strings(read_json(errors)),
        "last_seen": utc(last_seen),
    }
