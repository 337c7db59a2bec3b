"""Which status message a sender's row keeps: the one its sender wrote last, by the times it tells of
its bundles, not the one that arrived last. Two replicas behind a load balancer: a message held up at
one (r9, activated 20:07) was committed after a later one (r10, 20:09) that the other stored, and the
device showed r9 again. A sender whose clock went back is taken again once the window is past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.status import said_at, status_row
from pyagent.server.store import Store
from pyagent.server.store import sql as sql_store
from tests.server.conftest import decision_event

DEVICE = "fr-brussels-0042"


def _message(revision: str, activated: str, **more: str) -> dict[str, Any]:
    bundle = {"name": "pyagent", "active_revision": revision, "last_successful_activation": activated, **more}
    return {"labels": {"id": DEVICE, "version": "0.1.0"}, "bundles": {"pyagent": bundle}}


def _active(store: Store) -> str:
    state = store.device(DEVICE)
    assert state is not None and state.status is not None
    return str(state.status["bundles"]["pyagent"]["active_revision"])


@pytest.fixture
def store_with_one_device(store: Store) -> Store:
    batch = parse_batch([decision_event("d-1", device_id=DEVICE)])
    assert store.ingest(batch.rows, batch.reports).stored == 1
    return store


def test_a_message_written_before_the_stored_one_does_not_replace_it(store_with_one_device: Store) -> None:
    store_with_one_device.record_status(status_row(_message("r10", "2026-12-06T20:09:00.123456789Z")))
    store_with_one_device.record_status(status_row(_message("r9", "2026-12-06T20:07:00Z")))
    assert _active(store_with_one_device) == "r10"
    store_with_one_device.record_status(
        status_row(_message("r11", "2026-12-06T21:09:00+01:00", last_request="2026-12-06T20:10:00Z"))
    )
    # 20:10 by its last request: later, though its activation is 20:09
    assert _active(store_with_one_device) == "r11"


def test_a_message_that_tells_no_time_replaces_the_stored_one(store_with_one_device: Store) -> None:
    store_with_one_device.record_status(status_row(_message("r10", "2026-12-06T20:09:00Z")))
    untimed = {"labels": {"id": DEVICE}, "bundles": {"pyagent": {"name": "pyagent", "active_revision": "r8"}}}
    store_with_one_device.record_status(status_row(untimed))
    assert _active(store_with_one_device) == "r8"
    store_with_one_device.record_status(
        status_row(_message("r7", "2001-01-01T00:00:00Z"))
    )  # the stored one tells none
    assert _active(store_with_one_device) == "r7"


def test_past_the_window_a_sender_whose_clock_went_back_is_taken_again(
    store_with_one_device: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_with_one_device.record_status(status_row(_message("r10", "2026-12-06T20:09:00Z")))
    monkeypatch.setattr(
        sql_store, "LATE_STATUS_WINDOW", -sql_store.LATE_STATUS_WINDOW
    )  # (as if 5 min passed)
    store_with_one_device.record_status(status_row(_message("r11", "2026-12-06T19:09:00Z")))
    assert _active(store_with_one_device) == "r11"


def test_when_a_message_was_written_is_the_newest_time_it_tells() -> None:
    message = {
        "bundles": {
            "a": {
                "last_request": "2026-12-06T20:00:00Z",
                "last_successful_download": "2026-12-06T20:05:00.5Z",
            },
            "b": {"last_activation": "2026-12-06T21:04:00+01:00", "last_request": "not a time"},
            "c": "not a bundle",
            "d": {"last_request": "0001-01-01T00:00:00+01:00"},  # (year 0 in UTC: no clock's)
        }
    }
    assert said_at(message) == datetime(2026, 12, 6, 20, 5, 0, 500000, tzinfo=UTC)
    assert (said_at({"bundles": {}}), said_at({"bundles": []}), said_at({})) == (None, None, None)


def test_a_message_dated_ahead_of_the_server_keeps_no_later_one_out(store_with_one_device: Store) -> None:
    """A sender's 9999-12-31 kept every honest message out (a shared agent token could pin any
    device's status so): a time past a clock's skew tells nothing; within it, a fast clock's messages
    keep their own order (one held up at a replica does not replace a later one)."""
    store_with_one_device.record_status(status_row(_message("r-evil", "9999-12-31T23:59:59Z")))
    store_with_one_device.record_status(status_row(_message("r10", "2026-12-06T20:09:00Z")))
    assert _active(store_with_one_device) == "r10"
    fast = datetime.now(UTC) + timedelta(minutes=3)  # a device clock 3 minutes fast
    store_with_one_device.record_status(
        status_row(_message("r12", (fast + timedelta(seconds=30)).isoformat()))
    )
    store_with_one_device.record_status(
        status_row(_message("r11", fast.isoformat()))
    )  # written before, held up
    assert _active(store_with_one_device) == "r12"
