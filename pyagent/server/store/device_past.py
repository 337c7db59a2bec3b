"""One device's past, from the history index alone (``ix_decisions_latest``: device, instant,
decision id, verdict): the decision that held at an instant, and since when a verdict has held.

Decisions are ordered by (``decided_at``, ``decision_id``), as everywhere: at one instant the greater
decision id is the later."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from pyagent.server.store.base import PastDecision
from pyagent.server.store.schema import decisions


def _before(at: datetime, decision_id: str, *, inclusive: bool = False) -> ColumnElement[bool]:
    """Decisions before (``at``, ``decision_id``), that one too when ``inclusive``. The plain bound on
    the instant comes first: PostgreSQL prunes the daily partitions by it, and scans the index from it."""
    same = decisions.c.decision_id <= decision_id if inclusive else decisions.c.decision_id < decision_id
    return and_(
        decisions.c.decided_at <= at,
        or_(decisions.c.decided_at < at, and_(decisions.c.decided_at == at, same)),
    )


def _after(at: datetime, decision_id: str) -> ColumnElement[bool]:
    """Decisions strictly after (``at``, ``decision_id``)."""
    return and_(
        decisions.c.decided_at >= at,
        or_(
            decisions.c.decided_at > at,
            and_(decisions.c.decided_at == at, decisions.c.decision_id > decision_id),
        ),
    )


def decision_at(conn: Connection, device_id: str, at: datetime) -> PastDecision | None:
    row = conn.execute(
        select(decisions.c.decision_id, decisions.c.decided_at, decisions.c.allow, decisions.c.verdict)
        .where(decisions.c.device_id == device_id, decisions.c.decided_at <= at)
        .order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return PastDecision(row.decision_id, row.decided_at, row.allow, row.verdict)


def verdict_since(conn: Connection, device_id: str, at: datetime, decision_id: str, verdict: str) -> datetime:
    """The instant of the first decision of the run, ending with (``at``, ``decision_id``), whose every
    decision has ``verdict``: the first after the last decision before it with another verdict (or the
    device's first decision)."""
    other = conn.execute(
        select(decisions.c.decided_at, decisions.c.decision_id)
        .where(decisions.c.device_id == device_id, decisions.c.verdict != verdict, _before(at, decision_id))
        .order_by(decisions.c.decided_at.desc(), decisions.c.decision_id.desc())
        .limit(1)
    ).first()
    first = select(decisions.c.decided_at).where(
        decisions.c.device_id == device_id, _before(at, decision_id, inclusive=True)
    )
    if other is not None:
        first = first.where(_after(other.decided_at, other.decision_id))
    found = conn.execute(first.order_by(decisions.c.decided_at, decisions.c.decision_id).limit(1)).scalar()
    return found if found is not None else at
