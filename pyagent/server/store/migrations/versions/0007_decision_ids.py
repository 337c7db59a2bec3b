"""``decision_id`` alone is the key of an event: an unpartitioned ``decision_ids`` table beside the
history (whose key must hold the partition column), filled from the history already stored (the
earliest instant of each id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_ids",
        sa.Column("decision_id", sa.String(200), primary_key=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO decision_ids (decision_id, decided_at) "
        "SELECT decision_id, min(decided_at) FROM decisions GROUP BY decision_id"
    )


def downgrade() -> None:
    op.drop_table("decision_ids")
