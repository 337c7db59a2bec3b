"""PostgreSQL: decision ids compared by code point (collation "C"), as SQLite and Python compare
them. Of two decisions of one device at one instant the current one is that of the greater id; the
ingest picks it in Python, the history views and the upsert in SQL, and a database created with
another collation (``en-US`` puts "a" before "B") made them disagree. The indexes that hold the
column are rebuilt. SQLite compares bytes already: nothing to do there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("decisions", "decision_ids", "devices")


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f'ALTER TABLE {table} ALTER COLUMN decision_id TYPE varchar(200) COLLATE "{collation}"')


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
