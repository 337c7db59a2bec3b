"""A device's current state as the fleet API shows it: its last decision, its status (when it
reports one), since when its verdict has held, and the newest of its past decisions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from pyagent.server.store import device_past
from pyagent.server.store.base import DeviceState
from pyagent.server.store.chains import chain_json
from pyagent.server.store.rows import read_json, stored_status, utc
from pyagent.server.store.schema import chains, decisions, devices, instances


def device_state(conn: Connection, device_id: str, *, history: int, since: bool) -> DeviceState | None:
    """Device ``device_id``'s state, with up to ``history`` of its decisions, newest first, and
    (``since``) its ``verdict_since``; None for a device no decision is stored for."""
    row = conn.execute(select(devices).where(devices.c.device_id == device_id)).first()
    status = conn.execute(select(instances).where(instances.c.instance_id == device_id)).first()
    chain = conn.execute(select(chains).where(chains.c.device_id == device_id)).mappings().first()
    verdict_since = None
    if row is not None and since:
        verdict_since = device_past.verdict_since(
            conn, device_id, row.decided_at, row.decision_id, row.verdict
        )
    past: Sequence[Any] = []
    if row is not None and history > 0:
        past = conn.execute(
            select(
                decisions.c.decision_id,
                decisions.c.decided_at,
                decisions.c.allow,
                decisions.c.sender,
                decisions.c.bundles,
                decisions.c.verdict,
                decisions.c.received_at,
            )
            .where(decisions.c.device_id == device_id)
            .order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc())
            .limit(history + 1)  # (one more: whether older ones were left out)
        ).all()
    if row is None:
        return None
    state = DeviceState(
        device_id=row.device_id,
        organization=row.organization,
        platform=row.platform,
        allow=row.allow,
        decision_id=row.decision_id,
        decided_at=utc(row.decided_at),
        sender=row.sender,
        result=read_json(row.result),
        bundles=read_json(row.bundles),
        last_seen=utc(row.last_seen),
        verdict=row.verdict,
        report_digest=row.report_digest,
        verdict_since=utc(verdict_since) if verdict_since is not None else None,
        chain=chain_json(dict(chain) if chain is not None else None),
    )
    if status is not None:
        state.status = stored_status(status.instance_id, status.bundles, status.errors, status.last_seen)
    state.history = [
        {
            "decision_id": p.decision_id,
            "decided_at": utc(p.decided_at),
            "allow": p.allow,
            "sender": p.sender,
            "bundles": read_json(p.bundles),
            "verdict": p.verdict,
            "received_at": utc(p.received_at),
        }
        for p in past[:history]
    ]
    state.history_truncated = len(past) > history
    return state
