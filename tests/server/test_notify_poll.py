"""The SQLite bundle-change poll (:class:`pyagent.server.notify.Notifier`) outlives a failing read: a
database error is told in one line, an unforeseen one (a bug) with its traceback, and the next
change still wakes the long polls."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pyagent.server import notify
from pyagent.server.notify import Notifier
from pyagent.server.store import Store
from pyagent.server.store.base import StoreError


class RevisionReads:
    """A store's ``bundles_version`` answering from a script: a version, or an error to raise."""

    url = "sqlite:///server.db"

    def __init__(self, *answers: tuple[int, int] | Exception) -> None:
        self.answers = list(answers)

    def bundles_version(self) -> tuple[int, int]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_poll_outlives_a_database_error_and_a_bug(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(notify, "POLL_SECONDS", 0.01)
    pool = PoolTimeout("QueuePool limit of size 5 overflow 10 reached")  # (not wrapped by the store)
    unforeseen = KeyError("revision")
    reads = RevisionReads((7, 2), StoreError("database is locked"), pool, unforeseen, (7, 2), (7, 3))

    async def woken() -> bool:
        notifier = Notifier(cast(Store, reads))
        await notifier.start()
        try:
            return await notifier.wait(notifier.changed(), 5.0)
        finally:
            await notifier.stop()

    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        assert asyncio.run(woken()) is True
    told = [(r.levelname, r.getMessage(), r.exc_info[0] if r.exc_info else None) for r in caplog.records]
    assert told == [
        ("WARNING", "bundle change poll failed: database is locked", None),
        ("WARNING", f"bundle change poll failed: {pool}", None),
        ("ERROR", "bundle change poll failed unforeseen (a bug: please report it)", KeyError),
    ]
