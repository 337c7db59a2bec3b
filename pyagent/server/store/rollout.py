"""Rollout (CONTRACT section 8, ``/api/v1/rollout/{bundle}``): which revision of a bundle each device
and each OPA runs, and which of them refused the newest one, and why."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from pyagent.redact import redact_strings
from pyagent.server.store import fleet, revisions
from pyagent.server.store.base import Organization
from pyagent.server.store.fleet import aware, iso, json_object
from pyagent.server.store.schema import bundle_revisions, devices, instances

#: The builds a revision may hold: OPA's Rego bundle and the embedded engine's wasm bundle.
BUILDS = ("rego", "wasm")


def rollout(conn: Connection, name: str, organization: Organization) -> dict[str, Any] | None:
    """:func:`rollout_of` of bundle ``name`` from the store (None: never
    published): its newest revision, every sender's status, the devices' last decisions."""
    newest = conn.execute(
        select(bundle_revisions.c.revision, bundle_revisions.c.serial, bundle_revisions.c.published_at)
        .where(bundle_revisions.c.name == name)
        .order_by(bundle_revisions.c.id.desc())
        .limit(1)
    ).first()
    if newest is None:
        return None
    by_build = {target: revisions.newest_build(conn, name, target) for target in BUILDS}
    statuses = conn.execute(select(instances.c.instance_id, instances.c.bundles, instances.c.last_seen)).all()
    wanted = select(devices.c.device_id, devices.c.bundles)
    if organization is not None:
        wanted = wanted.where(fleet.organization_is(devices.c.organization, organization))
    decided = conn.execute(wanted).all()
    published = set(
        conn.execute(select(bundle_revisions.c.revision).where(bundle_revisions.c.name == name)).scalars()
    )
    names = conn.execute(select(func.count(distinct(bundle_revisions.c.name)))).scalar_one()
    return rollout_of(
        name,
        newest,
        statuses,
        decided,
        published=published,
        devices_only=organization is not None,
        sole=names == 1,
        newest_by_build={target: row.revision for target, row in by_build.items() if row is not None},
    )


def _entry(
    bundles: dict[str, Any], name: str, published: Collection[str], key: str, *, sole: bool = False
) -> dict[str, Any] | None:
    """The sender's entry for bundle ``name``: under that name, else under the name the sender gave
    it (an OPA names its bundles locally: ``bundles.fleet`` with ``resource: bundles/pyagent``), the
    one whose revision (``key``) was published under ``name``, when exactly one is. ``sole``: ``name``
    is the only bundle this server publishes, so a sender whose only bundle never activated and
    reports an error (an OPA that refuses every revision it is served) is refusing this one."""
    info = bundles.get(name)
    if isinstance(info, dict):
        return info
    found = [
        other
        for other in bundles.values()
        if isinstance(other, dict) and isinstance(other.get(key), str) and other[key] in published
    ]
    if found:
        return found[0] if len(found) == 1 else None  # two candidates: no way to tell which it is
    only = list(bundles.values())
    if sole and len(only) == 1 and isinstance(only[0], dict) and not only[0].get(key):
        failed = only[0].get("code") or only[0].get("message") or only[0].get("errors")
        return only[0] if failed else None
    return None


def rollout_of(
    name: str,
    newest: Any,
    statuses: Iterable[Any],
    decided: Iterable[Any],
    *,
    published: Collection[str] = (),
    devices_only: bool = False,
    sole: bool = False,
    newest_by_build: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Which revision of bundle ``name`` each device runs: what its status reports (an agent's status
    sender is its device), else what its last decision was made with (a device decided by an OPA).
    Senders whose status reports an error for the bundle are listed with their reasons: as
    ``refusals`` when they are not on the newest revision, else as ``errors_on_newest`` (they refused
    nothing published: a failed poll, say, or a bundle another server offered). A sender's
    bundle is found under ``name``, else under another name by a revision in ``published`` (those of
    ``name``), or as its sender's only bundle, never activated, when ``name`` is the only bundle
    published (``sole``). ``devices_only``: only senders that are devices of ``decided`` (an
    organisation's). ``newest_by_build``: the newest revision that holds each build (``rego`` for
    OPAs, ``wasm`` for agents): a revision published with one build leaves the other's senders on an
    older one, which is the newest they can get."""
    decided = list(decided)
    if devices_only:
        ids = {row.device_id for row in decided}
        statuses = [row for row in statuses if row.instance_id in ids]
    active: dict[str, str] = {}
    failing = []
    for row in statuses:
        info = _entry(json_object(row.bundles), name, published, "active_revision", sole=sole)
        if info is None:
            continue
        active[row.instance_id] = str(info.get("active_revision") or NO_REVISION)
        if info.get("code") or info.get("message") or info.get("errors"):
            # (redacted when stored; again here for what was stored before a rule was added)
            reasons = redact_strings(
                {"code": info.get("code"), "message": info.get("message"), "errors": info.get("errors") or []}
            )
            failing.append(
                {
                    "instance_id": row.instance_id,
                    "active_revision": active[row.instance_id],
                    **reasons,
                    "last_seen": iso(aware(row.last_seen)),
                }
            )
    failing.sort(key=lambda r: r["instance_id"])
    by_device: defaultdict[str, int] = defaultdict(int)
    devices_seen: set[str] = set()  # a failing sender that is a device has a device page
    for row in decided:
        devices_seen.add(row.device_id)
        revision = active.get(row.device_id)
        if revision is None:
            info = _entry(json_object(row.bundles), name, published, "revision")
            revision = str(info.get("revision") or NO_REVISION) if info is not None else NO_REVISION
        by_device[revision] += 1
    by_instance: defaultdict[str, int] = defaultdict(int)
    for revision in active.values():
        by_instance[revision] += 1
    total = sum(by_device.values())
    result: dict[str, Any] = {
        "bundle": name,
        "newest": {
            "revision": newest.revision,
            "serial": newest.serial,
            "published_at": iso(aware(newest.published_at)),
            "builds": sorted(
                t for t, revision in (newest_by_build or {}).items() if revision == newest.revision
            ),
        },
        "newest_by_build": dict(sorted((newest_by_build or {}).items())),
        "devices": total,
        "on_newest": by_device.get(newest.revision, 0),
        "by_revision": dict(sorted(by_device.items())),
        "instances_by_revision": dict(sorted(by_instance.items())),
    }
    listed = [{**r, "device": r["instance_id"] in devices_seen} for r in failing]
    result["refusals"] = [r for r in listed if r["active_revision"] != newest.revision]
    result["errors_on_newest"] = [r for r in listed if r["active_revision"] == newest.revision]
    return result


NO_REVISION = ""
"""The ``by_revision`` key (and ``active_revision``) of devices that report no bundle revision, or
OPA's unnamed one (``opa build`` without ``--revision`` reports ""): a revision named "(none)" is a
revision of its own."""
