"""The store on SQLAlchemy Core: one implementation, two dialects (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from pyagent.errors import InvalidInputError
from pyagent.server.store import (
    device_past,
    fleet,
    history,
    ingest,
    partitions,
    retention,
    revisions,
    rollout,
)
from pyagent.server.store.base import (
    BundleHead,
    DecisionRow,
    DeviceState,
    Grant,
    IngestResult,
    NewRevision,
    Organization,
    PastDecision,
    Publication,
    QueryTimeout,
    StatusRow,
    Store,
    StoreConflict,
    StoreError,
    TokenInfo,
)
from pyagent.server.store.deadline import Deadline
from pyagent.server.store.device_state import device_state
from pyagent.server.store.engine import open_engine, redact
from pyagent.server.store.rows import utc
from pyagent.server.store.schema import (
    bundle_files,
    bundle_revisions,
    devices,
    instances,
    reports,
    sessions,
    tokens,
)

#: Channel of PostgreSQL NOTIFY on publish (see :mod:`pyagent.server.notify`).
BUNDLE_CHANNEL = "pyagent_bundles"
#: How long after a status message arrives one its sender wrote before it is taken as held up on its
#: way (a slow replica) and kept out; past that, as from a sender whose clock went back, and stored.
LATE_STATUS_WINDOW = timedelta(minutes=5)


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self._partitions = partitions.PartitionCache() if self.dialect == "postgresql" else None

    def __repr__(self) -> str:
        return f"SqlStore({redact(self.url)})"

    @contextmanager
    def _tx(self, *, read: bool = False, one_statement: bool = False) -> Iterator[Connection]:
        """One transaction. On SQLite a write takes the write lock at BEGIN (IMMEDIATE); a ``read``
        does not, so that readers (token checks, long polls, the dashboard) never queue behind
        another process's ingest (WAL: readers see the last commit). A read of ``one_statement``
        is that statement alone on PostgreSQL (autocommit: no BEGIN and COMMIT round trips).
        A read is stopped after ``query_timeout_seconds`` (:class:`QueryTimeout`, see
        :mod:`~pyagent.server.store.deadline`)."""
        timeout = Deadline(self.query_timeout_seconds) if read else None
        try:
            with self.engine.connect() as conn:
                if read:
                    conn = conn.execution_options(pyagent_read=True)
                if read and one_statement and self.dialect == "postgresql":
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    if timeout is None or (one_statement and self.dialect == "postgresql"):
                        yield conn  # (a one-statement read is one indexed lookup)
                    else:
                        with timeout.bound(conn):
                            yield conn
        except (OperationalError, DBAPIError) as err:
            if isinstance(err, IntegrityError):
                raise
            if timeout is not None and timeout.stopped(err):
                raise QueryTimeout(
                    f"the query took longer than {timeout.seconds:g} s and was stopped"
                ) from err
            raise StoreError(f"database {redact(self.url)}: {_first_line(err)}") from err

    def migrate(self) -> list[str]:
        from pyagent.server.store.migrate import UnknownRevision, upgrade

        try:
            return upgrade(self.engine)
        except (OperationalError, DBAPIError, UnknownRevision) as err:
            if getattr(getattr(err, "orig", None), "sqlite_errorname", "") == "SQLITE_NOTADB":  # (the user's)
                path = self.url.removeprefix("sqlite:///").partition("?")[0]
                raise InvalidInputError(f"--db {path}: not a SQLite database file") from None
            raise StoreError(f"database {redact(self.url)}: {_first_line(err)}") from err

    def ping(self) -> None:
        with self._tx(read=True) as conn:
            conn.execute(select(1))

    def close(self) -> None:
        self.engine.dispose()

    # tokens
    def add_token(self, name: str, role: str, token_hash: str, device: str | None = None) -> None:
        try:
            with self._tx() as conn:
                conn.execute(
                    insert(tokens).values(
                        name=name,
                        role=role,
                        token_hash=token_hash,
                        created_at=datetime.now(UTC),
                        device=device,
                    )
                )
        except IntegrityError as err:
            raise StoreConflict(f"token {name!r} exists; revoke it first or choose another name") from err

    def list_tokens(self) -> list[TokenInfo]:
        with self._tx(read=True) as conn:
            columns = (tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.device)
            rows = conn.execute(select(*columns).order_by("name"))
            return [TokenInfo(r.name, r.role, utc(r.created_at), r.device) for r in rows]

    def revoke_token(self, name: str) -> bool:
        with self._tx() as conn:
            return conn.execute(delete(tokens).where(tokens.c.name == name)).rowcount > 0

    def grant_for(self, token_hash: str) -> Grant | None:
        with self._tx(read=True, one_statement=True) as conn:
            query = select(tokens.c.role, tokens.c.device).where(tokens.c.token_hash == token_hash)
            row = conn.execute(query).first()
            return Grant(str(row.role), row.device) if row is not None else None

    # dashboard sessions
    def create_session(self, session_hash: str, token_hash: str, csrf: str, expires_at: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(sessions).values(
                    session_hash=session_hash,
                    token_hash=token_hash,
                    csrf=csrf,
                    created_at=datetime.now(UTC),
                    expires_at=expires_at,
                )
            )

    def session(self, session_hash: str, now: datetime) -> tuple[str, str] | None:
        query = (
            select(tokens.c.role, sessions.c.csrf)
            .join(tokens, tokens.c.token_hash == sessions.c.token_hash)
            .where(sessions.c.session_hash == session_hash, sessions.c.expires_at > now)
        )
        with self._tx(read=True) as conn:
            row = conn.execute(query).first()
        return (row.role, row.csrf) if row is not None else None

    def end_session(self, session_hash: str, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                delete(sessions).where(
                    or_(sessions.c.session_hash == session_hash, sessions.c.expires_at <= now)
                )
            )

    # bundles
    def publish(self, new: NewRevision) -> Publication:
        with self._tx() as conn:
            if self.dialect == "postgresql":  # one publisher at a time per database
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7270301)")
            current = revisions.current(conn, new)
            if current is not None and current.already(new):
                return Publication(current.id, stored=False)
            # the current revision's missing build, or a new revision
            revision_id = current.id if current is not None and current.completed_by(new) else None
            if revision_id is None:
                revisions.check_newer(conn, new)
                revision_id = conn.execute(
                    insert(bundle_revisions)
                    .values(
                        name=new.name,
                        revision=new.revision,
                        serial=new.serial,
                        signed=new.signed,
                        published_at=datetime.now(UTC),
                        published_by=new.published_by,
                    )
                    .returning(bundle_revisions.c.id)
                ).scalar_one()
            conn.execute(
                insert(bundle_files),
                [
                    {
                        "revision_id": revision_id,
                        "target": f.target,
                        "etag": f.etag,
                        "size": len(f.content),
                        "content": f.content,
                    }
                    for f in new.files
                ],
            )
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_notify(BUNDLE_CHANNEL, new.name)))
            return Publication(int(revision_id))

    def bundle_head(self, name: str, target: str) -> BundleHead | None:
        with self._tx(read=True) as conn:
            row = revisions.newest_build(conn, name, target)
        if row is None:
            return None
        return BundleHead(row.id, name, target, row.revision, row.serial, row.etag, row.size)

    def bundle_content(self, revision_id: int, target: str) -> bytes:
        with self._tx(read=True) as conn:
            content = conn.execute(
                select(bundle_files.c.content).where(
                    bundle_files.c.revision_id == revision_id, bundle_files.c.target == target
                )
            ).scalar_one()
            return bytes(content)

    def bundle_names(self) -> set[str]:
        with self._tx(read=True) as conn:
            return set(conn.execute(select(bundle_revisions.c.name).distinct()).scalars())

    def bundles_version(self) -> tuple[int, int]:
        with self._tx(read=True) as conn:
            newest = conn.execute(select(func.coalesce(func.max(bundle_revisions.c.id), 0))).scalar_one()
            builds = conn.execute(select(func.count()).select_from(bundle_files)).scalar_one()
        return int(newest), int(builds)

    # results
    def ingest(self, rows: Sequence[DecisionRow], reports_by_digest: Mapping[str, bytes]) -> IngestResult:
        if not rows:
            return IngestResult(0, 0)
        instants = {row.decided_at for row in rows}
        for attempt in range(1, 4):
            if self._partitions is not None:
                self._partitions.ensure(self.engine, instants)
            try:
                with self._tx() as conn:
                    return ingest.ingest(conn, rows, reports_by_digest, datetime.now(UTC))
            except IntegrityError as err:  # another replica's retention dropped a day this one had made
                if attempt == 3 or self._partitions is None or not partitions.is_missing(err):
                    raise
                self._partitions.forget(instants)
        raise AssertionError("unreachable")

    def record_status(self, row: StatusRow) -> None:
        insert_fn = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        now = datetime.now(UTC)
        values = {
            "instance_id": row.instance_id,
            "labels": row.labels,
            "bundles": row.bundles,
            "errors": row.errors,
            "plugins": row.plugins,
            "last_seen": now,
            "said_at": _said_at(row.said_at, now),
        }
        statement = insert_fn(instances).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["instance_id"],
            set_={k: statement.excluded[k] for k in values if k != "instance_id"},
            # not a message written before the one stored, unless that one came long ago (the
            # sender's clock went back: its messages are taken again after LATE_STATUS_WINDOW)
            where=or_(
                instances.c.said_at.is_(None),
                statement.excluded.said_at.is_(None),
                statement.excluded.said_at >= instances.c.said_at,
                instances.c.last_seen < now - LATE_STATUS_WINDOW,
            ),
        )
        with self._tx() as conn:
            conn.execute(statement)
            conn.execute(
                update(devices)
                .where(devices.c.device_id == row.instance_id)
                .values(last_seen=func.greatest(devices.c.last_seen, values["last_seen"]))
                if self.dialect == "postgresql"
                else update(devices)
                .where(devices.c.device_id == row.instance_id, devices.c.last_seen < values["last_seen"])
                .values(last_seen=values["last_seen"])
            )

    def device(self, device_id: str, *, history: int = 0, since: bool = False) -> DeviceState | None:
        with self._tx(read=True) as conn:
            return device_state(conn, device_id, history=history, since=since)

    def decision_at(self, device_id: str, at: datetime) -> PastDecision | None:
        with self._tx(read=True) as conn:
            found = device_past.decision_at(conn, device_id, at)
        return None if found is None else replace(found, decided_at=utc(found.decided_at))

    def report(self, digest: str) -> dict[str, Any] | None:
        with self._tx(read=True) as conn:
            content = conn.execute(select(reports.c.content).where(reports.c.digest == digest)).scalar()
        if content is None:
            return None
        value = json.loads(zlib.decompress(content))
        return value if isinstance(value, dict) else None

    def prune(self, before: datetime) -> int:
        if self.dialect == "postgresql":
            return retention.prune_postgres(self.engine, before, self._partitions)
        with self._tx() as conn:
            return retention.prune_sqlite(conn, before)

    # fleet views
    def summary(
        self, *, now: datetime, at: datetime | None, organization: Organization, stale_after: timedelta
    ) -> dict[str, Any]:
        with self._tx(read=True) as conn:
            return fleet.summary(conn, now=now, at=at, organization=organization, stale_after=stale_after)

    def device_page(
        self, wanted: fleet.DeviceFilter, *, now: datetime, stale_after: timedelta
    ) -> tuple[list[dict[str, Any]], str | None]:
        with self._tx(read=True) as conn:
            return fleet.device_page(conn, wanted, now=now, stale_after=stale_after)

    def stale_devices(
        self,
        *,
        now: datetime,
        stale_after: timedelta,
        limit: int,
        organization: Organization = None,
        at: datetime | None = None,
    ) -> list[dict[str, Any]]:
        with self._tx(read=True) as conn:
            return fleet.stale_devices(
                conn, now=now, stale_after=stale_after, limit=limit, organization=organization, at=at
            )

    def history(
        self, steps: Sequence[datetime], *, organization: Organization, stale_after: timedelta
    ) -> list[dict[str, Any]]:
        with self._tx(read=True) as conn:
            return history.history(conn, steps, organization=organization, stale_after=stale_after)

    def rollout(self, name: str, organization: Organization = None) -> dict[str, Any] | None:
        with self._tx(read=True) as conn:
            return rollout.rollout(conn, name, organization)


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _said_at(said: datetime | None, now: datetime) -> datetime | None:
    """When a status message was written, as kept: None when it tells no time, or a time ahead of this
    clock by more than a clock's skew (``LATE_STATUS_WINDOW``: a message dated 9999 would keep every
    later one out); else as its sender wrote it (a clock a little fast orders its own messages)."""
    return None if said is None or said > now + LATE_STATUS_WINDOW else said
