"""SIGTERM always stops the agent, even when it lands while the main thread is inside ``Event.wait``
holding the Event's own lock (a handler that set the Event itself would wait for that lock forever)."""

from __future__ import annotations

import signal
import threading

from pyagent.agent.runner import StopFlag


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
