"""Database URLs and engines: SQLite (WAL, the zero-setup default) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pyagent.config.statedir import default_state_dir
from pyagent.errors import InvalidInputError

DB_ENV = "PYAGENT_SERVER_DB"
DEFAULT_DB_FILE = "server.db"


def resolve_url(db: str | None, state_dir: Path | None) -> str:
    """The SQLAlchemy URL for ``--db`` (or ``PYAGENT_SERVER_DB``): a ``postgresql://`` or ``sqlite:///``
    URL, or a file path for SQLite; none means ``server.db`` in the state dir."""
    value = db or os.environ.get(DB_ENV) or ""
    if not value:
        directory = state_dir or default_state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{directory / DEFAULT_DB_FILE}"
    if "://" not in value:
        return f"sqlite:///{Path(value).resolve()}"
    try:
        url = make_url(value)
    except ArgumentError as err:
        raise InvalidInputError(f"--db {redact(value)}: not a database URL ({err})") from err
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername == "sqlite":
        return value
    raise InvalidInputError(
        f"--db {redact(value)}: unsupported database {url.drivername!r}; use sqlite:///FILE or postgresql://…"
    )


def redact(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so that reads and writes in
        # one store call are one transaction (SQLAlchemy's documented recipe).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, pool_recycle=1800)


def _sqlite_begin(conn: Any) -> None:
    """BEGIN IMMEDIATE (the write lock first: no upgrade deadlock), BEGIN for the store's reads."""
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("pyagent_read") else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # BEGIN is issued by the "begin" hook above
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged batch survives a crash of the machine
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
