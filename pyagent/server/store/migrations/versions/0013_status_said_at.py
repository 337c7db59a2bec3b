"""When each status message was written, by its sender's clock (the newest time it tells of its
bundles): a message held up at one replica past a later one that another replica stored no longer
replaces it. Rows stored before have none: the next message replaces them, as before.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("said_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as table:  # (SQLite drops a column by copying the table)
        table.drop_column("said_at")
