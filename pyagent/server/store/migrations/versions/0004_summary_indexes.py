"""Indexes that answer fleet summaries from the index alone: each device's last decision at or
before an instant (``?at=``) and the current states grouped by organisation, platform and verdict.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_decisions_device_decided", "decisions")
    op.create_index(
        "ix_decisions_latest",
        "decisions",
        ["device_id", "decided_at", "decision_id", "verdict", "organization", "platform", "bans"],
    )
    op.create_index(
        "ix_devices_summary", "devices", ["organization", "platform", "verdict", "bans", "decided_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_devices_summary", "devices")
    op.drop_index("ix_decisions_latest", "decisions")
    op.create_index("ix_decisions_device_decided", "decisions", ["device_id", "decided_at"])
