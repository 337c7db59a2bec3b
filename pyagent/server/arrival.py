"""What a batch's arrival says of its decisions: one dated ahead of it (beyond ``MAX_AHEAD`` of clock
skew) is no fact about the device yet, and one asked about another instant than when it was made
whose instant is not yet stale at arrival could pass access gating (see :mod:`pyagent.server.events`).
Both are taken out of the batch as ignored, with the inventories only they used."""

from __future__ import annotations

from datetime import datetime, timedelta

from pyagent.server.events import Batch
from pyagent.server.instants import MAX_AHEAD
from pyagent.server.store.base import DecisionRow


def drop_ahead(batch: Batch, received: datetime) -> list[DecisionRow]:
    """Take out of ``batch`` (as ignored) the rows dated more than ``MAX_AHEAD`` after ``received``,
    with the inventories only they used; returns them."""
    latest = received + MAX_AHEAD
    ahead = [row for row in batch.rows if row.decided_at > latest]
    _drop(batch, ahead)
    return ahead


def drop_fresh_what_ifs(batch: Batch, received: datetime, stale_after: timedelta) -> list[str]:
    """Take out of ``batch`` (as ignored) the decisions asked about another instant than when they were
    made whose instant is not yet stale at ``received`` (with the inventories only they used); returns
    them named, in the batch's order. Those left are stale already: history, never a pass."""
    cutoff = received - stale_after
    fresh = [(row, name) for row, name in batch.what_ifs if row.decided_at >= cutoff]
    _drop(batch, [row for row, _ in fresh])
    return [name for _, name in fresh]


def _drop(batch: Batch, rows: list[DecisionRow]) -> None:
    """Take ``rows`` out of ``batch`` as ignored: out of its rows and its what-ifs by identity (the
    same row, not an equal one: two events of a crafted batch may be alike), and the inventories that
    only they used."""
    if not rows:
        return
    gone = {id(row) for row in rows}
    batch.rows = [row for row in batch.rows if id(row) not in gone]
    batch.what_ifs = [(row, name) for row, name in batch.what_ifs if id(row) not in gone]
    used = {row.report_digest for row in batch.rows}
    batch.reports = {digest: raw for digest, raw in batch.reports.items() if digest in used}
    batch.ignored += len(rows)
