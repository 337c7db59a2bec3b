"""The plug-ins of a long-running agent, each in a thread of its own beside the decisions.

* bundle: one attempt after another, each returning its delay (a long poll returns 0: the next one
  at once);
* decision logs: an upload every ``min..max_delay_seconds``, on a spool connection of its own (SQLite
  in WAL mode serialises it with the decisions' writes);
* status: a message as soon as something it reports changed, and every ``max_delay_seconds``.

A plug-in that fails unexpectedly is told in the activity log and tried again later; it never stops
the decisions. On exit the threads are told to stop; the decision logs' thread uploads what is pending
once more (within the time the exit waits for it); a long poll in flight is abandoned (the thread
is a daemon: the process does not wait for it, and a download is never activated half-way).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pyagent.agent.chain import ChainKey
from pyagent.agent.plugins.bundle import BundlePlugin
from pyagent.agent.store import Spool, SpoolError
from pyagent.agent.wiring import Plugins
from pyagent.errors import unexpected_traceback
from pyagent.termsafe import shorten

RETRY_AFTER_FAILURE = 30.0
#: Said of an error no code path foresaw, whose traceback the activity log keeps.
UNFORESEEN = "(unforeseen, a bug: please report it with its traceback)"
STATUS_TICK = 0.25


class _Log(Protocol):
    def event(self, name: str, text: str, **fields: object) -> None: ...


def guarded(log: _Log, name: str, step: Callable[[], float]) -> float:
    """``step()``'s delay; an unexpected failure is told, and the plug-in tried again later."""
    try:
        return step()
    except Exception as err:  # a plug-in never stops the agent; the failure is logged, and retried
        text = shorten(str(err), 500) or type(err).__name__
        tell_failure(log, name, err, text, foreseen=f"{name}: {type(err).__name__}: {text}")
        return RETRY_AFTER_FAILURE


def tell_failure(log: _Log, name: str, err: Exception, text: str, *, foreseen: str) -> None:
    """Plug-in ``name`` failed: a foreseen failure (a pyagent error, an ``OSError``) is told as
    ``foreseen``, one line; any other is a bug, told with its type and kept with its traceback."""
    stack = unexpected_traceback(err)
    if stack is None:
        log.event("plugin_failed", foreseen, plugin=name, error=text)
    else:
        told = f"{name}: {type(err).__name__}: {text} {UNFORESEEN}"
        log.event("plugin_failed", told, plugin=name, error=text, traceback=stack)


class PluginThreads:
    """``with PluginThreads(...)``: the plug-ins run in threads for the block."""

    def __init__(
        self,
        plugins: Plugins,
        stop: threading.Event,
        log: _Log,
        spool_path: Path,
        key: ChainKey,
        bundle_delay: float | None,
    ) -> None:
        self._plugins = plugins
        self._outer = stop
        self._stop = threading.Event()
        self._log = log
        self._spool_path = spool_path
        self._key = key
        self._bundle_delay = bundle_delay
        self._threads: list[tuple[threading.Thread, float]] = []

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the threads must stop."""
        return self._stop.wait(max(0.0, seconds)) or self._outer.is_set()

    def _bundle(self) -> None:
        """Steps after the first; or, with no delay given (the main thread did not download, a
        persisted bundle decides meanwhile), the first at once, without a long poll, as there."""
        bundle = self._plugins.bundle
        assert bundle is not None
        delay = self._bundle_delay
        if delay is None:
            delay = _first_step(bundle, self._log)
        while not self._wait(delay):
            delay = guarded(self._log, "bundle", bundle.step)

    def _logs(self) -> None:
        logs = self._plugins.logs
        assert logs is not None
        opened = self._open_spool()
        try:
            delay = logs.config.min_delay
            while not self._wait(delay):
                opened = self._follow(opened)
                if opened is None:
                    delay = RETRY_AFTER_FAILURE
                    continue
                delay = guarded(self._log, "decision_logs", functools.partial(logs.step, opened[0]))
            # Stopping: once the decisions' loop has recorded its last run (a stop signal lets it
            # finish), what is pending is uploaded, as OPA's plug-in does when OPA stops. The wait for
            # this thread bounds it; what is not taken by then stays in the spool for the next start.
            self._stop.wait()
            opened = self._follow(opened)
            if opened is not None:
                guarded(self._log, "decision_logs", functools.partial(logs.step, opened[0]))
        finally:
            if opened is not None:
                opened[0].close()

    def _follow(
        self, opened: tuple[Spool, tuple[int, int] | None] | None
    ) -> tuple[Spool, tuple[int, int] | None] | None:
        """The spool to upload from: ``opened`` while it is still the one the decisions are recorded
        in; else (none open yet, or moved aside and a new one made) the one there now, when it opens."""
        if opened is not None and _identity(self._spool_path) in (opened[1], None):
            return opened
        fresh = self._open_spool()
        if fresh is None:
            return opened
        if opened is not None:
            opened[0].close()
        return fresh

    def _open_spool(self) -> tuple[Spool, tuple[int, int] | None] | None:
        """The spool the decisions are recorded in, and which file it is (the decision loop may move a
        corrupt one aside and start another, which the uploads must follow); None, told, when it
        cannot be opened now (tried again at the next upload)."""
        for _ in range(3):
            before = _identity(self._spool_path)
            try:
                spool = Spool.open(self._spool_path, key=self._key)
            except Exception as err:  # told (a bug with its traceback); the decisions go on, pending
                self._told(err)
                return None
            try:
                spool.check_key()  # a chain of another key: its records would all read as edited
            except SpoolError as err:
                spool.close()
                self._told(err)
                return None
            if _identity(self._spool_path) == before:
                return spool, before
            spool.close()  # replaced while it was opened: open the one there now
        return None

    def _told(self, err: Exception) -> None:
        tell_failure(self._log, "decision_logs", err, str(err), foreseen=f"decision_logs: {err}")

    def _status(self) -> None:
        status = self._plugins.status
        assert status is not None
        next_due = 0.0
        while not self._wait(STATUS_TICK):
            now = time.monotonic()
            if now >= next_due or (status.changed() and status.state.last_error is None):
                next_due = now + guarded(self._log, "status", status.step)

    def __enter__(self) -> PluginThreads:
        plugins = self._plugins
        jobs: list[tuple[str, Callable[[], None], float]] = []
        if plugins.bundle is not None:
            jobs.append(("bundle", self._bundle, 1.0))
        if plugins.logs is not None:
            jobs.append(("decision_logs", self._logs, plugins.logs.client.service.timeout + 2))
        if plugins.status is not None:
            jobs.append(("status", self._status, plugins.status.client.service.timeout + 2))
        for name, target, join_timeout in jobs:
            thread = threading.Thread(target=_deaf(target), name=f"pyagent-{name}", daemon=True)
            thread.start()
            self._threads.append((thread, join_timeout))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread, timeout in self._threads:
            thread.join(timeout)
        # a download its thread was left in goes, not only at the next start
        if self._plugins.bundle is not None:
            self._plugins.bundle.dir.drop_downloads()


#: How long a one-off run (``--once``) that has an active bundle waits for its download of a newer
#: one before it decides with the active one: a bundle server that trickles its answer must not hold
#: back (or, under a service manager's start timeout, cancel) the run's one decision.
ONCE_WAIT_SECONDS = 60.0


def first_download(
    plugins: Plugins, stop: threading.Event, log: _Log, *, limit: float | None = None
) -> float | None:
    """The bundle's first step (download without a long poll), in a thread of its own while the main
    thread, the one CPython runs signal handlers in, waits on ``stop``: a stop signal is acted on at
    once, not when a download that may take minutes ends. Its delay until the next step; None when
    stopped first (the download is left to end with the process; its partial file is cleaned away
    at the next start). Past ``limit`` seconds the wait ends, said, and the download goes on in its
    thread (it activates what it gets, if it ends before the process)."""
    bundle = plugins.bundle
    assert bundle is not None
    delay: list[float] = []
    worker = threading.Thread(
        target=_deaf(lambda: delay.append(_first_step(bundle, log))),
        name="pyagent-bundle-first",
        daemon=True,
    )
    worker.start()
    until = None if limit is None else time.monotonic() + limit
    while worker.is_alive():
        if stop.wait(0.1):
            return None
        if until is not None and time.monotonic() >= until:
            revision = bundle.status.active_revision
            log.event(
                "bundle_slow",
                (
                    f"bundle {bundle.name}: the download is still running after {limit:g} s; deciding with "
                    f"the active bundle (revision {revision})"
                ),
                bundle=bundle.name,
                revision=revision,
            )
            return 0.0
    return delay[0] if delay else 0.0


def _first_step(bundle: BundlePlugin, log: _Log) -> float:
    """A first download: at once, without a long poll (nothing is active to hold it on)."""
    return guarded(log, "bundle", lambda: bundle.step(wait=False))


#: Stop signals, for the main thread alone (:func:`_deaf`).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _deaf(target: Callable[[], None]) -> Callable[[], None]:
    """``target``, run with the stop signals blocked in its thread. The kernel gives a process's signal
    to any thread that does not block it, and CPython runs the handler in the main thread only: sent
    to a plug-in thread while the main thread sleeps in a lock wait (``StopFlag.sleep``), it was not
    handled until that sleep ended, and the agent outlived its SIGTERM."""

    def run() -> None:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        target()

    return run


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` names now (device, inode), or None when none does."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino
