"""Each device's decision-log chain: its head, holes and breaks (``pyagent.server.store.chains``).
The server checks that each chained record an agent sends extends the last it stored. Devices start
with no head: the first chained record after this migration starts each.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chains",
        sa.Column("device_id", sa.String(512), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("head_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breaks", sa.Integer, nullable=False),
        sa.Column("missing", sa.BigInteger, nullable=False),
        sa.Column("holes", sa.Text, nullable=True),
        sa.Column("unconfirmed", sa.BigInteger, nullable=False),
        sa.Column("unconfirmed_ids", sa.Text, nullable=True),
        sa.Column("last_break", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chains")
