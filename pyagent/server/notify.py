"""Waking long polls when a bundle is published, in every replica.

PostgreSQL: a thread LISTENs on the channel that :meth:`SqlStore.publish` NOTIFYs in the publishing
transaction, so a publish through any replica (or ``pyagent server publish``) wakes the long polls
of all. SQLite (one server process): the newest revision id and the number of builds stored are
polled a few times a second, which also sees a publish made by the command line, and one that adds
the missing build of the current revision. Waiters then re-read the store; a wake-up is a hint,
never the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sqlalchemy.exc import SQLAlchemyError

from pyagent.logsetup import get_logger
from pyagent.server.store.base import Store, StoreError
from pyagent.server.store.sql import BUNDLE_CHANNEL

log = get_logger("pyagent.server")

POLL_SECONDS = 0.2

#: Set when this process begins its graceful shutdown (:class:`~pyagent.server.protocol.
#: HeaderDeadlineProtocol` ``.shutdown``): a held long poll then answers 304 within a second, so
#: that its client asks again (another replica, behind a load balancer), rather than being cut off
#: with a 500 when the grace period ends.
DRAINING = threading.Event()


class Notifier:
    """Wakes every waiter on any bundle change (long polls re-check their own bundle)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.store.url.startswith("postgresql"):
            self._thread = threading.Thread(target=self._listen, name="pyagent-notify", daemon=True)
            self._thread.start()
        else:
            self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def changed(self) -> asyncio.Event:
        """The event the next change sets: take it before reading the store, then :meth:`wait` on it."""
        return self._event

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``event``; True when a change came."""
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def wake(self) -> None:
        """Wake every current waiter (call on the event loop)."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _wake_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.wake)

    async def _poll(self) -> None:
        last = await asyncio.to_thread(self.store.bundles_version)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                now = await asyncio.to_thread(self.store.bundles_version)
            except (StoreError, SQLAlchemyError) as err:  # a failing database (a pool timed out too)
                log.warning("bundle change poll failed: %s", err)
                continue
            except Exception:  # a bug: told with its traceback; long polls still end at their wait
                log.exception("bundle change poll failed unforeseen (a bug: please report it)")
                continue
            if now != last:
                last = now
                self.wake()

    def _listen(self) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.store.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {BUNDLE_CHANNEL}")
                    self._wake_threadsafe()  # anything published while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake_threadsafe()
            except psycopg.Error as err:
                log.warning("LISTEN %s failed, retrying: %s", BUNDLE_CHANNEL, err)
                self._stop.wait(1.0)
