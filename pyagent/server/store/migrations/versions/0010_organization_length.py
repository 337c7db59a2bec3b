"""An organisation is an identifier of up to 512 characters, as the report schema takes it: the
``organization`` columns of the history and of the current state held 200, and the server cut longer
names there, so that an API filter by the whole name found none of its devices.

PostgreSQL widens a ``varchar`` in place. SQLite does not look at a declared length, but the schema
says it: the two tables are copied (``batch_alter_table``), and the history index that orders decision
ids descending (0005) is made again as it was.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("decisions", "devices")
LATEST = ("device_id", "decided_at", "decision_id DESC", "verdict", "organization", "platform", "bans")


def _resize(old: int, new: int) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.drop_index("ix_decisions_latest", "decisions")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "organization", type_=sa.String(new), existing_type=sa.String(old), existing_nullable=True
            )
    if sqlite:
        op.create_index("ix_decisions_latest", "decisions", [sa.text(column) for column in LATEST])


def upgrade() -> None:
    _resize(200, 512)


def downgrade() -> None:
    bind = op.get_bind()
    for table in TABLES:
        longer = bind.execute(
            sa.text(f"SELECT count(*) FROM {table} WHERE length(organization) > 200")
        ).scalar()
        if longer:  # cutting them would merge organisations that share their first 200 characters
            raise RuntimeError(
                f"{longer} row(s) of {table} name an organization longer than 200 characters; "
                "delete them before downgrading below 0010"
            )
    _resize(512, 200)
