"""The first schema: tokens, bundle revisions and files, reports, decision history, devices, instances.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 512


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "bundle_revisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("revision", sa.String(ID), nullable=False),
        sa.Column("serial", sa.BigInteger, nullable=True),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_bundle_revisions_name_id", "bundle_revisions", ["name", "id"])
    op.create_table(
        "bundle_files",
        sa.Column("revision_id", sa.Integer, sa.ForeignKey("bundle_revisions.id"), primary_key=True),
        sa.Column("target", sa.String(8), primary_key=True),
        sa.Column("etag", sa.String(80), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(200), primary_key=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("device_id", sa.String(ID), nullable=False),
        sa.Column("sender", sa.String(ID), nullable=False),
        sa.Column("path", sa.String(ID), nullable=False),
        sa.Column("allow", sa.Boolean, nullable=True),
        sa.Column("organization", sa.String(200), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("report_digest", sa.String(64), nullable=True),
        sa.Column("bundles", sa.Text, nullable=True),
        sa.Column("chain", sa.Text, nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        # PostgreSQL: partitioned by day on the decision's instant (partitions made on demand)
        postgresql_partition_by="RANGE (decided_at)",
    )
    op.create_index("ix_decisions_device_decided", "decisions", ["device_id", "decided_at"])
    op.create_index("ix_decisions_decided", "decisions", ["decided_at"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(ID), primary_key=True),
        sa.Column("organization", sa.String(200), nullable=True),
        sa.Column("platform", sa.String(32), nullable=True),
        sa.Column("allow", sa.Boolean, nullable=True),
        sa.Column("decision_id", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(ID), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("report_digest", sa.String(64), nullable=True),
        sa.Column("bundles", sa.Text, nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_devices_organization", "devices", ["organization"])
    op.create_table(
        "instances",
        sa.Column("instance_id", sa.String(ID), primary_key=True),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("bundles", sa.Text, nullable=False),
        sa.Column("errors", sa.Text, nullable=False),
        sa.Column("plugins", sa.Text, nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "instances",
        "devices",
        "decisions",
        "reports",
        "bundle_files",
        "bundle_revisions",
        "tokens",
    ):
        op.drop_table(table)
