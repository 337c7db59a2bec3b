"""Fleet views over the store (CONTRACT section 8): summaries now and at any past instant, device
pages, access-gating answers, rollout, history. Counting happens in SQL (``GROUP BY``), so a
summary costs one aggregate over the current states, or over the history up to an instant.

A device's **status** at an instant is its last decision at or before that instant: ``compliant``,
``non_compliant``, ``invalid`` (the policy answered with errors) or ``undecided`` (no result); a
device whose last decision is older than ``stale_after`` is **stale** and counts as not compliant
(it is counted in ``stale`` and in ``non_compliant``), so ``devices = compliant + non_compliant +
invalid + undecided`` always holds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Select, and_, false, func, or_, select, text

from pyagent.server.store.base import NO_ORGANIZATION, Organization
from pyagent.server.store.rows import stored_status, utc
from pyagent.server.store.schema import devices, instances

STATUSES = ("compliant", "non_compliant", "invalid", "undecided")
UNKNOWN = ""
"""The ``by_platform`` key of the devices whose decisions name no platform: a platform sent as
"(none)" is a platform of its own, never merged with them."""
#: The ``by_organization`` key of the devices without an organisation: no organisation is named ""
#: (an empty one is stored as none), so they never merge with one, whatever it is named.
NO_ORGANIZATION_KEY = ""


def organization_sql(organization: Organization, keyword: str = "WHERE") -> str:
    """The condition on ``organization`` of raw SQL (its value bound as ``:organization``)."""
    if organization is None:
        return ""
    if organization is NO_ORGANIZATION:
        return f"{keyword} organization IS NULL"
    return f"{keyword} organization = :organization"


def organization_name(organization: Organization) -> str | None:
    """The value of ``:organization`` for :func:`organization_sql`."""
    return organization if isinstance(organization, str) else None


def organization_is(column: Column[Any], organization: Organization) -> ColumnElement[bool]:
    """The condition on ``column`` for an organisation filter that is not None."""
    return column.is_(None) if organization is NO_ORGANIZATION else column == organization


@dataclass(frozen=True)
class DeviceFilter:
    organization: Organization = None
    platform: str | None = None
    #: the last decision's ``allow`` (a device without one is not allowed)
    allow: bool | None = None
    #: allowed, without errors, and not stale: what the summary counts as compliant
    compliant: bool | None = None
    stale: bool | None = None
    ban: str | None = None
    cursor: str | None = None
    limit: int = 100


#: SQLite: each device's row with the greatest ``decided_at``: SQLite takes the bare columns of a
#: ``max()`` aggregate from the first row that has it, and the covering index (migration 0005) lists
#: equal instants by decision id descending, so ties go to the greater decision id.
_LATEST_SQLITE = """
SELECT organization, platform, verdict, bans, count(*) AS n, sum(d < :cutoff) AS n_stale FROM (
  SELECT organization, platform, verdict, bans, max(decided_at) AS d
  FROM decisions INDEXED BY ix_decisions_latest WHERE decided_at <= :at GROUP BY device_id) AS latest
{where} GROUP BY organization, platform, verdict, bans
"""
#: PostgreSQL: DISTINCT ON over a backward scan of the same index.
_LATEST_POSTGRES = """
SELECT organization, platform, verdict, bans, count(*) AS n,
       count(*) FILTER (WHERE decided_at < :cutoff) AS n_stale FROM (
  SELECT DISTINCT ON (device_id) organization, platform, verdict, bans, decided_at FROM decisions
  WHERE decided_at <= :at ORDER BY device_id DESC, decided_at DESC, decision_id DESC) AS latest
{where} GROUP BY organization, platform, verdict, bans
"""


def _latest_at(conn: Connection, at: datetime, cutoff: datetime, organization: Organization) -> list[Any]:
    """Counts over each device's last decision at or before ``at`` (ties: the greater decision id)."""
    where = organization_sql(organization)
    params: dict[str, Any] = {"at": at, "cutoff": cutoff, "organization": organization_name(organization)}
    if conn.dialect.name == "sqlite":  # timestamps are stored as text in this form: compare as text
        params.update(
            at=sqlite_text(at),
            cutoff=sqlite_text(cutoff),
        )
        return list(conn.execute(text(_LATEST_SQLITE.format(where=where)), params))
    return list(conn.execute(text(_LATEST_POSTGRES.format(where=where)), params))


def earlier(instant: datetime, delta: timedelta) -> datetime:
    """``instant - delta``, or the earliest instant there is when that is before it (a query ``at``
    in year 1 asks of a time before any decision: nothing is stale then)."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return instant - delta if instant - earliest > delta else earliest


def sqlite_text(value: datetime) -> str:
    """An instant as SQLite keeps timestamps: UTC text, every field zero-padded (year 1 too), so
    that text order is time order."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def summary(
    conn: Connection,
    *,
    now: datetime,
    at: datetime | None,
    organization: Organization,
    stale_after: timedelta,
) -> dict[str, Any]:
    """The fleet summary now (current states) or as of ``at`` (the append-only history)."""
    instant = at or now
    cutoff = earlier(instant, stale_after)
    if at is not None:
        return _fold(_latest_at(conn, at, cutoff, organization), instant)
    # grouped in the order of ix_devices_summary, so the index is read in order, without a sort
    columns = (devices.c.organization, devices.c.platform, devices.c.verdict, devices.c.bans)
    stale = func.count().filter(devices.c.decided_at < cutoff).label("n_stale")
    query: Select[Any] = select(*columns, func.count().label("n"), stale).group_by(*columns)
    if organization is not None:
        query = query.where(organization_is(devices.c.organization, organization))
    return _fold(conn.execute(query).all(), instant)


def _counts() -> dict[str, int]:
    return {"devices": 0, **dict.fromkeys(STATUSES, 0), "stale": 0}


def _fold(rows: Iterable[Any], instant: datetime) -> dict[str, Any]:
    totals = _counts()
    by_org: defaultdict[str, dict[str, int]] = defaultdict(_counts)
    by_platform: defaultdict[str, dict[str, int]] = defaultdict(_counts)
    by_ban: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"devices": 0})
    for row in rows:  # a group's stale devices count as not compliant, the others by their verdict
        stale = int(row.n_stale or 0)
        organization = row.organization or NO_ORGANIZATION_KEY
        for counts in (totals, by_org[organization], by_platform[row.platform or UNKNOWN]):
            counts["devices"] += row.n
            counts[row.verdict] += row.n - stale
            counts["non_compliant"] += stale
            counts["stale"] += stale
        for ban in filter(None, (row.bans or "").split("|")):
            by_ban[ban]["devices"] += row.n
    return {
        **totals,
        "at": iso(instant),
        "by_organization": dict(sorted(by_org.items())),
        "by_platform": dict(sorted(by_platform.items())),
        "by_ban": dict(sorted(by_ban.items())),
    }


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def device_page(
    conn: Connection, wanted: DeviceFilter, *, now: datetime, stale_after: timedelta
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of current states ordered by device id, and the cursor of the next page (or None)."""
    cutoff = earlier(now, stale_after)
    query = (
        select(
            devices.c.device_id,
            devices.c.organization,
            devices.c.platform,
            devices.c.allow,
            devices.c.verdict,
            devices.c.bans,
            devices.c.decision_id,
            devices.c.decided_at,
            devices.c.last_seen,
            devices.c.bundles,
            (devices.c.decided_at < cutoff).label("stale"),
            # the device's own status (an agent reports as its device; an OPA as an instance of its own)
            instances.c.instance_id.label("status_instance"),
            instances.c.bundles.label("status_bundles"),
            instances.c.errors.label("status_errors"),
            instances.c.last_seen.label("status_last_seen"),
        )
        .select_from(devices.outerjoin(instances, instances.c.instance_id == devices.c.device_id))
        .order_by(devices.c.device_id)
        .limit(wanted.limit + 1)
    )
    conditions = []
    if wanted.organization is not None:
        conditions.append(organization_is(devices.c.organization, wanted.organization))
    if wanted.platform is not None:
        conditions.append(devices.c.platform == wanted.platform)
    if wanted.allow is not None:
        # the last decision's allow as it reads: an undecided device (allow null) is neither; it is in
        # compliant=false, the filter that counts every device not to be let in
        conditions.append(devices.c.allow.is_(wanted.allow))
    if wanted.compliant is True:
        conditions.append(and_(devices.c.verdict == "compliant", devices.c.decided_at >= cutoff))
    elif wanted.compliant is False:
        conditions.append(or_(devices.c.verdict != "compliant", devices.c.decided_at < cutoff))
    if wanted.stale is not None:
        conditions.append(devices.c.decided_at < cutoff if wanted.stale else devices.c.decided_at >= cutoff)
    if wanted.ban is not None:  # exactly that ban, case and all: ``bans`` is "|a|b|" (no name has a "|")
        found = func.instr if conn.dialect.name == "sqlite" else func.strpos
        conditions.append(found(devices.c.bans, f"|{wanted.ban}|") > 0 if "|" not in wanted.ban else false())
    if wanted.cursor is not None:
        conditions.append(devices.c.device_id > wanted.cursor)
    rows = conn.execute(query.where(*conditions) if conditions else query).all()
    more = len(rows) > wanted.limit
    page = [_device_item(row) for row in rows[: wanted.limit]]
    return page, (page[-1]["device_id"] if more and page else None)


def _device_item(row: Any) -> dict[str, Any]:
    item = dict(row._mapping)
    if "status_instance" in item:  # as on the device's own page: its status message, or null
        instance, bundles, errors, seen = (
            item.pop(f"status_{key}") for key in ("instance", "bundles", "errors", "last_seen")
        )
        item["status"] = None
        if instance is not None:
            item["status"] = stored_status(instance, bundles, errors, aware(seen))
            item["status"]["last_seen"] = iso(item["status"]["last_seen"])
    for key in ("decided_at", "last_seen"):
        if key in item:
            item[key] = iso(aware(item[key]))
    if "bans" in item:
        item["bans"] = [ban for ban in (item["bans"] or "").split("|") if ban]
    if "bundles" in item:
        item["bundles"] = json_object(item["bundles"])
    if "stale" in item:
        item["stale"] = bool(item["stale"])
    if "verdict" in item and "stale" in item:
        item["compliant"] = item["verdict"] == "compliant" and not item["stale"]
    return item


#: The devices whose last decision at or before ``:at`` is older than ``:cutoff`` (as the summary at
#: that instant counts them), oldest first: the same latest-row queries as ``_LATEST_*``.
_STALE_AT_SQLITE = """
SELECT device_id, organization, platform, d AS decided_at FROM (
  SELECT device_id, organization, platform, max(decided_at) AS d
  FROM decisions INDEXED BY ix_decisions_latest WHERE decided_at <= :at GROUP BY device_id) AS latest
WHERE d < :cutoff {where} ORDER BY d, device_id LIMIT :limit
"""
_STALE_AT_POSTGRES = """
SELECT device_id, organization, platform, decided_at FROM (
  SELECT DISTINCT ON (device_id) device_id, organization, platform, decided_at FROM decisions
  WHERE decided_at <= :at ORDER BY device_id DESC, decided_at DESC, decision_id DESC) AS latest
WHERE decided_at < :cutoff {where} ORDER BY decided_at, device_id LIMIT :limit
"""


def stale_devices(
    conn: Connection,
    *,
    now: datetime,
    stale_after: timedelta,
    limit: int,
    organization: Organization = None,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The stale devices, oldest decision first: now (current states), or as of ``at`` (the history)."""
    if at is not None:
        where = organization_sql(organization, "AND")
        params: dict[str, Any] = {
            "at": at,
            "cutoff": earlier(at, stale_after),
            "organization": organization_name(organization),
            "limit": limit,
        }
        sql = _STALE_AT_POSTGRES
        if conn.dialect.name == "sqlite":
            params.update(at=sqlite_text(at), cutoff=sqlite_text(params["cutoff"]))
            sql = _STALE_AT_SQLITE
        return [_device_item(row) for row in conn.execute(text(sql.format(where=where)), params)]
    query = (
        select(
            devices.c.device_id,
            devices.c.organization,
            devices.c.platform,
            devices.c.decided_at,
            devices.c.last_seen,
        )
        .where(devices.c.decided_at < earlier(now, stale_after))
        .order_by(devices.c.decided_at, devices.c.device_id)
        .limit(limit)
    )
    if organization is not None:
        query = query.where(organization_is(devices.c.organization, organization))
    return [_device_item(row) for row in conn.execute(query)]


def aware(value: datetime | str) -> datetime:
    """An instant from the database, aware and in UTC (SQLite's text form, in raw SQL, parsed; a
    PostgreSQL session's own time zone undone)."""
    return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def json_object(text: str | None) -> dict[str, Any]:
    """A stored JSON column holding an object (else, or NULL: an empty one)."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}
