"""SIGTERM always stops the agent, even when it lands while the main thread is inside ``Event.wait``
holding the Event's own lock (a handler that set the Event itself would wait for that lock forever)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from pyagent.agent.chain import ChainKey
from pyagent.agent.runner import StopFlag
from pyagent.agent.threads import PluginThreads
from pyagent.agent.wiring import Plugins


def test_the_signal_handler_never_waits_for_the_events_lock() -> None:
    stop = StopFlag()
    returned = threading.Event()

    def handler_inside_wait() -> None:
        with stop.event._cond:  # type: ignore[attr-defined]  # as the main thread does inside Event.wait
            stop._handle(signal.SIGTERM, None)  # the handler runs on that same thread
            returned.set()

    thread = threading.Thread(target=handler_inside_wait, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert returned.is_set(), "the signal handler blocked on the Event's lock: the agent would hang"
    assert stop.sleep(5) is True  # the stop still arrives, once the lock is free
    assert stop.signal_name == "SIGTERM"


def test_the_plugin_threads_leave_the_stop_signals_to_the_main_thread(tmp_path: Path) -> None:
    """The kernel gives a process's SIGTERM to any thread that does not block it, and CPython handles
    it in the main thread only: one given to a plug-in thread while the main thread slept in a lock
    wait left the agent running past its SIGTERM (a CI run saw it). The plug-in threads block them."""
    masks: list[set[int]] = []

    class RecordingStatus:
        client = SimpleNamespace(service=SimpleNamespace(timeout=1.0))
        state = SimpleNamespace(last_error=None)

        def changed(self) -> bool:
            return False

        def step(self) -> float:
            masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
            return 60.0

    plugins = Plugins(status=RecordingStatus())  # type: ignore[arg-type]
    log = SimpleNamespace(event=lambda *args, **fields: None)
    with PluginThreads(plugins, threading.Event(), log, tmp_path / "spool.sqlite", ChainKey(), 1.0):
        deadline = time.monotonic() + 5
        while not masks and time.monotonic() < deadline:
            time.sleep(0.01)
    assert masks and {signal.SIGTERM, signal.SIGINT} <= masks[0]
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the main thread's own
