"""Counts at many instants in one pass (``GET /api/v1/history``, the dashboard's trend), equal at
each instant to ``summary(at=instant)``'s.

Each decision holds from its instant until its device's next decision (LEAD over the history
index): it **spans** ``[decided_at, next_at)``, and is stale from ``decided_at + stale_after`` on
(strictly after: stale means ``decided_at < instant - stale_after``). A span is turned into
events on the time axis: +1 to its verdict where it starts, a move from its verdict to ``stale``
where it turns stale (if it has not ended by then), -1 where it ends. The instants asked are put
on the same axis, and one running sum per bucket, in time order, gives the counts at each: one
sort of (events + instants), where a join of every instant with every span cost instants x spans
(999 instants over 600,000 decisions: 53 s on PostgreSQL). At one time, starts and ends come
before an instant (a decision at the instant holds at it, one ended at it does not) and stale
turns after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from pyagent.server.store.base import Organization
from pyagent.server.store.fleet import (
    STATUSES,
    aware,
    earlier,
    iso,
    organization_name,
    organization_sql,
    sqlite_text,
)

_HISTORY = """
WITH steps(step) AS (VALUES {values}),
spans AS (
  SELECT organization, verdict, decided_at,
         LEAD(decided_at) OVER (PARTITION BY device_id ORDER BY decided_at, decision_id) AS next_at
  FROM decisions WHERE decided_at <= :last),
live AS (
  SELECT verdict, decided_at, next_at,
         CASE WHEN decided_at < :staleable THEN {stale_at} END AS stale_at
  FROM spans WHERE (next_at IS NULL OR next_at > :first) {where}),
turns AS (
  SELECT verdict, stale_at FROM live
  WHERE stale_at IS NOT NULL AND (next_at IS NULL OR stale_at < next_at)),
events(t, o, bucket, w) AS (
  SELECT decided_at, 0, verdict, 1 FROM live
  UNION ALL
  SELECT next_at, 0, CASE WHEN stale_at < next_at THEN 'stale' ELSE verdict END, -1 FROM live
  WHERE next_at IS NOT NULL
  UNION ALL SELECT stale_at, 2, verdict, -1 FROM turns
  UNION ALL SELECT stale_at, 2, 'stale', 1 FROM turns
  UNION ALL SELECT step, 1, '', 0 FROM steps),
swept AS (
  SELECT t, o, {sums} FROM events WINDOW run AS (ORDER BY t, o))
SELECT t AS step, {buckets} FROM swept WHERE o = 1
"""
_BUCKETS = (*STATUSES, "stale")
#: ``decided_at + stale_after``: SQLite keeps timestamps as text (whole seconds shifted, the fraction
#: kept as it is: SQLite's date arithmetic rounds to milliseconds); PostgreSQL adds seconds (never
#: days, which would follow the session's time zone).
_STALE_AT = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%S', substr(decided_at, 1, 19), :shift) || substr(decided_at, 20)",
    "postgresql": "decided_at + make_interval(secs => CAST(:stale_seconds AS double precision))",
}


def history(
    conn: Connection, steps: Sequence[datetime], *, organization: Organization, stale_after: timedelta
) -> list[dict[str, Any]]:
    """Per instant of ``steps``: devices, each status and stale, as ``summary(at=...)`` counts them."""
    if not steps:
        return []
    sqlite = conn.dialect.name == "sqlite"

    def bound(value: datetime) -> Any:  # SQLite keeps timestamps as text of this form
        return sqlite_text(value) if sqlite else value

    seconds = stale_after.total_seconds()
    params: dict[str, Any] = {
        "first": bound(min(steps)),
        "last": bound(max(steps)),
        # a decision this late is never stale before the end of time (and adding to it would overflow)
        "staleable": bound(earlier(datetime.max.replace(tzinfo=UTC), stale_after)),
        "shift": f"+{int(seconds)} seconds",
        "stale_seconds": seconds,
        "organization": organization_name(organization),
    }
    values = []
    for index, step in enumerate(steps):
        params[f"s{index}"] = bound(step)
        values.append(f"(:s{index})")
    sql = _HISTORY.format(
        values=", ".join(values),
        stale_at=_STALE_AT["sqlite" if sqlite else "postgresql"],
        where=organization_sql(organization, "AND"),
        sums=", ".join(f"sum(CASE WHEN bucket = '{b}' THEN w ELSE 0 END) OVER run AS {b}" for b in _BUCKETS),
        buckets=", ".join(_BUCKETS),
    )
    points: dict[Any, dict[str, Any]] = {
        bound(step): {"at": iso(step), "devices": 0, **dict.fromkeys(STATUSES, 0), "stale": 0}
        for step in steps
    }
    for row in conn.execute(text(sql), params):
        point = points[row.step if sqlite else aware(row.step)]
        counts = {bucket: int(getattr(row, bucket) or 0) for bucket in _BUCKETS}
        point.update(counts, devices=sum(counts.values()))  # a stale device counts as not compliant
        point["non_compliant"] += counts["stale"]
    return list(points.values())


def history_steps(start: datetime, end: datetime, step: timedelta, limit: int) -> list[datetime]:
    """``start``, every ``step`` after it up to ``end``, and ``end`` itself when a step stops short of
    it (a chart ends at ``end`` all the same): at most ``limit`` points, that last one included."""
    if step <= timedelta(0) or end < start:
        return []
    count = int((end - start) / step) + 1
    short = start + (count - 1) * step != end  # (the last step is never past end: no overflow)
    if count + short > limit:
        raise ValueError(f"{count + short} points asked, at most {limit}: widen step or narrow from/to")
    return [start + i * step for i in range(count)] + ([end] if short else [])
