"""Migrations as code: Alembic, driven from Python (no alembic.ini), run on start and by
``pyagent server migrate``. On PostgreSQL an advisory lock makes replicas that start together
apply them once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK = 7270300


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    head_revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head_revision is not None
    return head_revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


class UnknownRevision(Exception):
    """The database's schema is at a revision these migrations do not have: a newer pyagent's."""


def upgrade(engine: Engine) -> list[str]:
    """Apply every pending migration; return the revisions applied (empty when up to date).
    Raises :class:`UnknownRevision` for a schema of a revision these migrations do not have."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        # (a SQLite file named by mistake; a PostgreSQL database may hold an extension's tables)
        if (
            before is None
            and engine.dialect.name == "sqlite"
            and (others := sorted(inspect(conn).get_table_names()))
        ):
            raise UnknownRevision(
                f"it holds tables that are not this pyagent's ({', '.join(others[:5])}"
                f"{', …' if len(others) > 5 else ''}) and no pyagent schema: give an empty database or "
                "pyagent's"
            )
        if before is not None and before not in {rev.revision for rev in script.walk_revisions()}:
            raise UnknownRevision(
                f"its schema is at revision {before!r}, which this pyagent does not know (its newest is "
                f"{script.get_current_head()!r}): a newer pyagent migrated it; run that one, or upgrade"
            )
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        after = MigrationContext.configure(conn).get_current_revision()
    if before == after:
        return []
    applied = [rev.revision for rev in script.iterate_revisions(after, before)]
    return list(reversed(applied))
