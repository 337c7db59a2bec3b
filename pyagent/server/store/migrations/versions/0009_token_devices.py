"""An agent token may be bound to one device (``pyagent server token add --device``): the server
then refuses its decision logs and status messages for any other device. Tokens made before stay
unbound (NULL), as an OPA that logs the decisions of many devices needs.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("device", sa.String(512), nullable=True))


def downgrade() -> None:
    bound = op.get_bind().execute(sa.text("SELECT count(*) FROM tokens WHERE device IS NOT NULL")).scalar()
    if bound:  # dropping the column would turn each into a token for any device
        raise RuntimeError(
            f"{bound} token(s) are bound to a device; revoke them before downgrading below 0009"
        )
    with op.batch_alter_table("tokens") as batch:  # (SQLite drops a column by copying the table)
        batch.drop_column("device")
