"""Fleet views: each decision's verdict, violated bans and platform, for summaries and filters.

``verdict`` is ``compliant``, ``non_compliant``, ``invalid`` (the policy answered with errors) or
``undecided`` (no result: the policy was not loaded); ``bans`` lists the violated bans as
``|ban-a|ban-b|`` (empty when none), so that a filter is one ``LIKE`` on both databases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("decisions", "devices"):
        op.add_column(table, sa.Column("verdict", sa.String(16), nullable=False, server_default="undecided"))
        op.add_column(table, sa.Column("bans", sa.Text, nullable=False, server_default=""))
    op.add_column("decisions", sa.Column("platform", sa.String(32), nullable=True))
    op.create_index("ix_devices_verdict_decided", "devices", ["verdict", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_devices_verdict_decided", "devices")
    op.drop_column("decisions", "platform")
    for table in ("decisions", "devices"):
        op.drop_column(table, "bans")
        op.drop_column(table, "verdict")
