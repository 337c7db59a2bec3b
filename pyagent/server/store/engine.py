"""Database URLs and engines: SQLite (WAL, the zero-setup default) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pyagent.config.statedir import default_state_dir, private_dir, private_file, sqlite_side_files
from pyagent.errors import InvalidInputError

DB_ENV = "PYAGENT_SERVER_DB"
DEFAULT_DB_FILE = "server.db"


def resolve_url(db: str | None, state_dir: Path | None, *, create: bool = True) -> str:
    """The SQLAlchemy URL for ``--db`` (or ``PYAGENT_SERVER_DB``): a ``postgresql://`` or ``sqlite:///``
    URL, or a file path for SQLite; none means ``server.db`` in the state dir. Without ``create``, a
    SQLite file named that does not exist is refused (a command that only reads or removes: a typo);
    the state dir's own is made."""
    if db is not None and not db.strip():
        raise InvalidInputError(
            "--db: empty; give postgresql://… or sqlite:///FILE, or leave it out for server.db in the "
            "state dir"
        )
    value = db or os.environ.get(DB_ENV) or ""
    if not value:
        return _sqlite_url(private_dir(state_dir or default_state_dir()) / DEFAULT_DB_FILE)  # (made)
    if "://" not in value:
        # a URL mistyped (postgresql:/host/db, postgresql:user:pw@host/db), not a file's path
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", value) or re.match(
            r"(?i)(postgres(ql)?|sqlite)(\+\w+)?:", value
        ):
            scheme, _, rest = value.partition(":")
            shown = f"{scheme}:…@{rest.rpartition('@')[2]}" if "@" in rest else value  # (user-info: hidden)
            raise InvalidInputError(
                f"--db {shown}: not a database URL (a URL is scheme://…); expected "
                "postgresql://HOST[:PORT]/DATABASE or sqlite:///FILE"
            )
        return _sqlite_url(Path(value).resolve(), create)
    try:
        url = make_url(value)
        port = url.port  # a port or an IPv6 host that does not parse raises here
        url.host  # noqa: B018
    except (ArgumentError, ValueError):
        raise InvalidInputError(
            f"--db {redact(value)}: not a database URL (its host or port does not parse); expected "
            "postgresql://HOST[:PORT]/DATABASE or sqlite:///FILE"
        ) from None
    if port is not None and not 0 < port < 65536:
        raise InvalidInputError(f"--db {redact(value)}: port {port} is not between 1 and 65535")
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if url.drivername == "sqlite":
        if url.host or not url.database:
            raise InvalidInputError(
                f"--db {redact(value)}: a SQLite database is sqlite:///relative/file.db or "
                "sqlite:////absolute/file.db (or just the file's path)"
            )
        if url.database == ":memory:":
            return value
        query = value[value.index("?") :] if "?" in value else ""  # (SQLite's options, kept)
        return _sqlite_url(Path(url.database).resolve(), create) + query
    raise InvalidInputError(
        f"--db {redact(value)}: unsupported database {url.drivername!r}; use sqlite:///FILE or postgresql://…"
    )


def _sqlite_url(path: Path, create: bool = True) -> str:
    """The URL of the SQLite database at ``path``, which holds every device's inventory and history:
    like the agent's spool, a regular file only this user writes (not a link: SQLite would follow it),
    in such a directory, created 0600 (with ``create``; else it must exist). A directory is the user's
    mistake (exit 2), not the database's (exit 3); so is a file that is no SQLite database, found when
    it is first read (:meth:`SqlStore.migrate`: never by reading it here, as a descriptor of the file
    closed in a process where SQLite has it open drops SQLite's locks on it)."""
    if path.is_dir():
        raise InvalidInputError(f"--db {path}: a directory, not a SQLite database file")
    if not path.exists() and not create:
        raise InvalidInputError(
            f"--db {path}: no such database (`pyagent server migrate`, `run` or `token add` makes it)"
        )
    private_file(path, what="server database")
    sqlite_side_files(path, what="server database's side file")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except FileExistsError:
        pass
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot create the server database: {err.strerror or err}") from None
    return f"sqlite:///{path}"


def redact(url: str) -> str:
    """``url`` with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"


def open_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over so that reads and writes in
        # one store call are one transaction (SQLAlchemy's documented recipe).
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # a PostgreSQL that does not answer (a host gone, a firewall dropping packets) is a StoreError in
    # seconds, a 503 from /health, rather than a connection attempt held for minutes; and a connection
    # already open whose packets go unanswered is dropped by the kernel in about 30 s (keepalives,
    # tcp_user_timeout) rather than the ~15 minutes of its retransmissions. What a URL gives itself stands.
    given = make_url(url).query
    args = {key: value for key, value in _PG_CONNECT_ARGS.items() if key not in given}
    if "connect_timeout" not in given:
        args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return create_engine(
        url,
        pool_size=8,
        max_overflow=8,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args=args,
    )


#: How long a new PostgreSQL connection may take (libpq's ``connect_timeout``; none by default).
CONNECT_TIMEOUT_SECONDS = 5

_PG_CONNECT_ARGS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,  # an idle pooled connection is probed after 30 s,
    "keepalives_interval": 10,  # every 10 s,
    "keepalives_count": 3,  # and given up after 3 probes unanswered
    "tcp_user_timeout": 30_000,  # ms: data sent and not acknowledged for 30 s ends the connection
}


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
