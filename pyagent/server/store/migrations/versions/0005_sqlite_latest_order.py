"""SQLite: the history index orders equal instants by decision id descending, so that a plain
``max(decided_at)`` per device takes its bare columns from the greater decision id (SQLite keeps the
first row of equal maxima), as the current state does. PostgreSQL keeps the ascending index, which
its ``DISTINCT ON`` reads backwards.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("verdict", "organization", "platform", "bans")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_decisions_latest", "decisions")
    op.create_index(
        "ix_decisions_latest", "decisions", ["device_id", "decided_at", sa.text("decision_id DESC"), *COLUMNS]
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_decisions_latest", "decisions")
    op.create_index("ix_decisions_latest", "decisions", ["device_id", "decided_at", "decision_id", *COLUMNS])
