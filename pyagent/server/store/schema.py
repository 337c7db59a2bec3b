"""The SQL schema, as SQLAlchemy Core tables: the one description the store's queries use.

The migrations under :mod:`pyagent.server.store.migrations` create exactly this (a test compares
them); a change here needs a new migration.

* ``decisions`` is the append-only history, one row per decision-log event. Its key is
  ``(decision_id, decided_at)``: PostgreSQL partitions the history by day on the instant, and a
  partitioned table's keys must include the partition column.
* ``decision_ids`` makes ``decision_id`` alone the key of an event (CONTRACT section 7: an event
  whose ``decision_id`` is stored is stored once, whatever its ``input.at``): one unpartitioned row
  per stored event, written first in the ingest's transaction (``ON CONFLICT DO NOTHING``), and
  dropped with the history rows by retention.
* ``reports`` holds each device report once per content digest (zlib-compressed canonical JSON):
  an inventory rarely changes between runs, so a history row carries only the digest.
* ``devices`` is each device's current state: its newest decision (by the decision's own instant,
  so a late upload never overwrites a newer state) and when it was last heard of.
* ``verdict`` (compliant, non_compliant, invalid, undecided) and ``bans`` (``|a|b|``, the violated
  bans) are derived from the decision at ingest, so that fleet summaries are one ``GROUP BY``.
* ``devices`` is vacuumed by autovacuum after 1% of its rows changed (PostgreSQL, migration 0008):
  the fleet summary's index-only scan reads the heap for each row on a page changed since.
* ``chains`` is each device's decision-log chain head and its breaks (migration 0012; see
  :mod:`pyagent.server.store.chains`).
* ``instances`` is the newest status message per sender (an agent's id is its device id; an OPA's
  is its instance id).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: Bounds of identifiers (CONTRACT section 1 allows 512-character ids).
ID_LENGTH = 512
#: A decision id, compared by code point on both stores (PostgreSQL: collation "C", migration 0011),
#: as Python compares it: of two decisions of a device at one instant the greater id is the current
#: one, and a database's own collation (``en-US`` puts "a" before "B") would pick another in SQL.
DECISION_ID = String(200).with_variant(String(200, collation="C"), "postgresql")

tokens = Table(
    "tokens",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("device", String(ID_LENGTH), nullable=True),  # an agent token bound to one device (0009)
)

bundle_revisions = Table(
    "bundle_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("revision", String(ID_LENGTH), nullable=False),
    Column("serial", BigInteger, nullable=True),
    Column("signed", Boolean, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("published_by", String(200), nullable=False),
    Index("ix_bundle_revisions_name_id", "name", "id"),
)

bundle_files = Table(
    "bundle_files",
    metadata,
    Column("revision_id", Integer, ForeignKey("bundle_revisions.id"), primary_key=True),
    Column("target", String(8), primary_key=True),
    Column("etag", String(80), nullable=False),
    Column("size", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
)

reports = Table(
    "reports",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("content", LargeBinary, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", DECISION_ID, primary_key=True),
    Column("decided_at", DateTime(timezone=True), primary_key=True),
    Column("device_id", String(ID_LENGTH), nullable=False),
    Column("sender", String(ID_LENGTH), nullable=False),
    Column("path", String(ID_LENGTH), nullable=False),
    Column("allow", Boolean, nullable=True),
    Column("organization", String(ID_LENGTH), nullable=True),
    Column("result", Text, nullable=True),
    Column("report_digest", String(64), nullable=True),
    Column("bundles", Text, nullable=True),
    Column("chain", Text, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("verdict", String(16), nullable=False, server_default="undecided"),
    Column("bans", Text, nullable=False, server_default=""),
    Column("platform", String(32), nullable=True),
    Column("collected_at", String(64), nullable=True),
    # each device's last decision at or before an instant, from the index alone (a backward scan)
    Index(
        "ix_decisions_latest",
        "device_id",
        "decided_at",
        "decision_id",
        "verdict",
        "organization",
        "platform",
        "bans",
    ),
    Index("ix_decisions_decided", "decided_at"),
    postgresql_partition_by="RANGE (decided_at)",
)

decision_ids = Table(
    "decision_ids",
    metadata,
    Column("decision_id", DECISION_ID, primary_key=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(ID_LENGTH), primary_key=True),
    Column("organization", String(ID_LENGTH), nullable=True),
    Column("platform", String(32), nullable=True),
    Column("allow", Boolean, nullable=True),
    Column("decision_id", DECISION_ID, nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("sender", String(ID_LENGTH), nullable=False),
    Column("result", Text, nullable=True),
    Column("report_digest", String(64), nullable=True),
    Column("bundles", Text, nullable=True),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("verdict", String(16), nullable=False, server_default="undecided"),
    Column("bans", Text, nullable=False, server_default=""),
    Index("ix_devices_organization", "organization"),
    Index("ix_devices_verdict_decided", "verdict", "decided_at"),
    Index("ix_devices_summary", "organization", "platform", "verdict", "bans", "decided_at"),
    # every decision rewrites a row: vacuumed after 1% changed, so the summary reads the index alone
    postgresql_with={"autovacuum_vacuum_scale_factor": "0.01"},
)

chains = Table(
    "chains",
    metadata,
    Column("device_id", String(ID_LENGTH), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("head_at", DateTime(timezone=True), nullable=True),
    Column("breaks", Integer, nullable=False),
    Column("missing", BigInteger, nullable=False),
    Column("holes", Text, nullable=True),
    Column("unconfirmed", BigInteger, nullable=False),
    Column("unconfirmed_ids", Text, nullable=True),
    Column("last_break", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(ID_LENGTH), primary_key=True),
    Column("labels", Text, nullable=False),
    Column("bundles", Text, nullable=False),
    Column("errors", Text, nullable=False),
    Column("plugins", Text, nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("said_at", DateTime(timezone=True), nullable=True),  # its sender's newest time (0013)
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_sessions_expires", "expires_at"),
)
