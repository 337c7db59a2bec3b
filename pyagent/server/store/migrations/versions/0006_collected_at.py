"""Reports are stored once per inventory: the run's ``collected_at`` leaves the stored report (its
digest would otherwise change every run) and is kept on the decision's history row instead.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("collected_at", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("decisions", "collected_at")
