"""The order of a bundle's revisions (CONTRACT section 7: a publish stores a revision only when its
revision/serial is newer than the current one), checked in the publish's transaction.

When the new revision carries a build serial (``.manifest`` ``metadata.pyagent.serial``, verified
when the server has a key, read as is when it has none), it must be greater than every serial
published under the bundle's name: that is the order agents enforce. Otherwise (or when the current
revision has no serial) a revision is an opaque name, and it is newer when it was never published
under the bundle's name: the current one again, or an earlier one (a rollback), is refused.

Once a revision of a bundle was verified by the server's key (``[server.verification]``), a publish
that verifies none (``server publish`` without the server's config) is refused: every replica and
every publisher would otherwise have to hold the key for signing to mean anything.

One exception: a publish of the current revision (same name, revision and serial) that brings only
builds it lacks (its wasm build after a rego-only publish, say) completes it, so that
``/bundles/NAME`` and ``/bundles/NAME/wasm`` serve the same revision again
(:meth:`Current.completed_by`); and the current revision again, byte for byte, stores nothing
(:meth:`Current.already`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from pyagent.server.store.base import NewRevision, StoreConflict
from pyagent.server.store.schema import bundle_files, bundle_revisions


@dataclass(frozen=True)
class Current:
    """The current revision of a bundle, when a publish brings that same revision: its id and the
    builds it holds (target -> ETag)."""

    id: int
    builds: dict[str, str]

    def already(self, new: NewRevision) -> bool:
        """``new`` is exactly what it holds: each build ``new`` brings is stored here, byte for byte
        (a publish retried after its answer was lost: nothing to store, and no refusal). Not a
        revision's build that a newer revision followed, nor one verified otherwise than this one."""
        return all(self.builds.get(f.target) == f.etag for f in new.files)

    def completed_by(self, new: NewRevision) -> bool:
        """``new`` brings only builds (targets) it does not hold yet."""
        return not set(self.builds) & {f.target for f in new.files}


def current(conn: Connection, new: NewRevision) -> Current | None:
    """The newest revision of ``new``'s bundle when ``new`` is that revision (same revision and serial,
    signed alike), with its builds; else None."""
    row = conn.execute(
        select(
            bundle_revisions.c.id,
            bundle_revisions.c.revision,
            bundle_revisions.c.serial,
            bundle_revisions.c.signed,
        )
        .where(bundle_revisions.c.name == new.name)
        .order_by(bundle_revisions.c.id.desc())
        .limit(1)
    ).first()
    if row is None or (row.revision, row.serial, bool(row.signed)) != (new.revision, new.serial, new.signed):
        return None
    builds = conn.execute(
        select(bundle_files.c.target, bundle_files.c.etag).where(bundle_files.c.revision_id == row.id)
    )
    return Current(int(row.id), {build.target: build.etag for build in builds})


def check_newer(conn: Connection, new: NewRevision) -> None:
    """Raise :class:`StoreConflict` unless ``new`` is newer than the bundle's current revision. A
    serial is compared with the greatest one published under the name, not only the current one's: a
    revision without a serial in between (unsigned, say) must not reopen the way to an older serial."""
    current = conn.execute(
        select(bundle_revisions.c.revision, bundle_revisions.c.serial)
        .where(bundle_revisions.c.name == new.name)
        .order_by(bundle_revisions.c.id.desc())
        .limit(1)
    ).first()
    if current is None:
        return
    if not new.signed:  # a publish without the key never undoes a server's with it
        verified = conn.execute(
            select(bundle_revisions.c.revision)
            .where(bundle_revisions.c.name == new.name, bundle_revisions.c.signed.is_(True))
            .order_by(bundle_revisions.c.id.desc())
            .limit(1)
        ).scalar()
        if verified is not None:
            raise StoreConflict(
                f"bundle {new.name}: revision {verified!r} was verified by the server's key, and this "
                "publish verifies none; publish with the server's config, whose [server.verification] "
                "names the key (pyagent server publish --config FILE)"
            )
    if new.serial is not None:
        highest = conn.execute(
            select(bundle_revisions.c.revision, bundle_revisions.c.serial)
            .where(bundle_revisions.c.name == new.name, bundle_revisions.c.serial.is_not(None))
            .order_by(bundle_revisions.c.serial.desc(), bundle_revisions.c.id.desc())
            .limit(1)
        ).first()
        if highest is not None and new.serial <= highest.serial:
            which = "current" if highest.revision == current.revision else "published"
            raise StoreConflict(
                f"bundle {new.name}: serial {new.serial} is not newer than the {which} serial "
                f"{highest.serial} (revision {highest.revision})"
            )
    # a newer build under a name already published: devices on either would read as on the same one
    again = (
        "; a newer build needs a revision of its own (pyagent policy bundle --revision), and another "
        "target of the same build its serial (--serial)"
    )
    newer = new.serial is not None and current.serial is not None
    if new.revision == current.revision:
        told = f"bundle {new.name}: revision {current.revision!r} is already the current one"
        raise StoreConflict(told + (again if newer else ""))
    earlier = conn.execute(
        select(bundle_revisions.c.id)
        .where(bundle_revisions.c.name == new.name, bundle_revisions.c.revision == new.revision)
        .limit(1)
    ).first()
    if earlier is not None:
        raise StoreConflict(
            f"bundle {new.name}: revision {new.revision!r} was published before"
            + (again if newer else f"; it is not newer than the current revision {current.revision!r}")
        )


def newest_build(conn: Connection, name: str, target: str) -> Any:
    """The newest revision of bundle ``name`` that has a build for ``target`` (its id, revision,
    serial, and that build's ETag and size), or None: what ``/bundles/NAME`` (rego) or its ``/wasm``
    serves."""
    return conn.execute(
        select(
            bundle_revisions.c.id,
            bundle_revisions.c.revision,
            bundle_revisions.c.serial,
            bundle_files.c.etag,
            bundle_files.c.size,
        )
        .join(bundle_files, bundle_files.c.revision_id == bundle_revisions.c.id)
        .where(bundle_revisions.c.name == name, bundle_files.c.target == target)
        .order_by(bundle_revisions.c.id.desc())
        .limit(1)
    ).first()
