"""A reader's time bound (``query_timeout_seconds``): a costly question (a long history at a fine
step) must not hold a connection and the database for minutes, nor go on long after its client
has gone (a query is not stopped when its client goes: it runs until it ends or its bound passes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


class Deadline:
    """A read's time bound: PostgreSQL's ``statement_timeout`` for the transaction (``SET LOCAL``),
    SQLite's progress handler, which stops the statement once the deadline has passed."""

    #: SQLite virtual-machine instructions between two looks at the clock (well under a millisecond)
    EVERY = 10_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.passed = False

    @contextmanager
    def bound(self, conn: Connection) -> Iterator[None]:
        if conn.dialect.name == "postgresql":
            milliseconds = max(1, round(self.seconds * 1000))  # (0 would be no bound at all)
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
            yield
            return
        raw = conn.connection.driver_connection
        assert raw is not None  # (a connection in use)
        deadline = time.monotonic() + self.seconds

        def past() -> int:
            self.passed = self.passed or time.monotonic() > deadline
            return int(self.passed)

        raw.set_progress_handler(past, self.EVERY)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)

    def stopped(self, err: DBAPIError) -> bool:
        """Whether ``err`` is this bound stopping the statement."""
        return self.passed or getattr(err.orig, "sqlstate", None) == "57014"  # query_canceled
