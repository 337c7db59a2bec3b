"""Two replicas on one PostgreSQL (two stores on one database): batches sharing devices, a late
event on a day the other replica's retention dropped, and retention beside ingest. Each was a 5xx:
a deadlock (503) or a missing partition (500), with the batch resent."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.store import Store, open_store
from pyagent.server.store.rows import newest_per_device
from tests.helpers.postgres import RunningPostgres
from tests.server.conftest import decision_event


@pytest.fixture
def replicas(postgres: RunningPostgres, request: pytest.FixtureRequest) -> Iterator[tuple[Store, Store]]:
    url = postgres.create_database("races_" + request.node.name.lower().replace("test_", "")[:40])
    first, second = open_store(url), open_store(url)
    yield first, second
    first.close()
    second.close()


def _ingest(store: Store, events: list[dict[str, Any]]) -> tuple[int, int]:
    batch = parse_batch(events)
    result = store.ingest(batch.rows, batch.reports)
    return result.stored, result.duplicates


def _together(*jobs: Callable[[], object]) -> list[BaseException]:
    """Run ``jobs`` in threads started at once; the exceptions they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def run(job: Callable[[], object]) -> None:
        start.wait()
        try:
            job()
        except BaseException as err:  # collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert not hung, f"still running after 120 s: {hung}"
    return errors


def test_an_upsert_takes_its_devices_in_device_id_order() -> None:
    rows = parse_batch([decision_event(f"d-{n}", device_id=f"dev-{(7 * n) % 10}") for n in range(10)]).rows
    assert [row.device_id for row in newest_per_device(rows)] == [f"dev-{n}" for n in range(10)]


def test_batches_sharing_devices_in_opposite_orders_do_not_deadlock(replicas: tuple[Store, Store]) -> None:
    first, second = replicas
    devices = [f"dev-{n:03d}" for n in range(200)]
    for round_ in range(4):
        at = f"2023-03-16T09:{round_:02d}:00Z"
        forward = [decision_event(f"a{round_}-{d}", device_id=d, at=at) for d in devices]
        backward = [decision_event(f"b{round_}-{d}", device_id=d, at=at) for d in reversed(devices)]
        errors = _together(
            functools.partial(_ingest, first, forward), functools.partial(_ingest, second, backward)
        )
        assert errors == []
    state = first.device("dev-000", history=20)
    assert state is not None and len(state.history) == 8


def test_a_late_event_on_a_day_another_replica_dropped_is_stored(replicas: tuple[Store, Store]) -> None:
    first, second = replicas
    old = "2023-01-01T10:00:00Z"
    assert _ingest(first, [decision_event("old-1", device_id="late", at=old)]) == (1, 0)
    assert _ingest(first, [decision_event("new-1", device_id="late", at="2023-03-16T10:00:00Z")]) == (1, 0)
    assert (
        second.prune(datetime(2023, 2, 1, tzinfo=UTC)) == 1
    )  # the first one still thinks 1 January is there
    assert _ingest(first, [decision_event("old-2", device_id="late", at="2023-01-01T11:00:00Z")]) == (1, 0)
    state = first.device("late", history=5)
    assert state is not None and [h["decision_id"] for h in state.history] == ["new-1", "old-2"]


def test_retention_beside_ingest_of_late_events_neither_deadlocks(replicas: tuple[Store, Store]) -> None:
    first, second = replicas
    day = datetime(2023, 1, 1, 10, tzinfo=UTC)
    stop = threading.Event()
    pruned: list[int] = []
    stored: list[tuple[int, int]] = []

    def prune() -> None:  # (every 20 ms: the server's retention runs hourly)
        while not stop.wait(0.02):
            pruned.append(second.prune(datetime(2023, 2, 1, tzinfo=UTC)))

    def late_events() -> None:
        """60 ingests at least, and on until three prune rounds ran beside them and one dropped
        something (60 s at most): a fixed count alone could end before the rounds did."""
        deadline = time.monotonic() + 60
        try:
            n = 0
            while n < 60 or (not (len(pruned) >= 3 and sum(pruned) >= 1) and time.monotonic() < deadline):
                at = (day + timedelta(days=n % 20)).strftime("%Y-%m-%dT%H:%M:%SZ")
                stored.append(_ingest(first, [decision_event(f"late-{n}", device_id=f"dev-{n % 7}", at=at)]))
                n += 1
        finally:
            stop.set()

    assert _together(prune, late_events) == []
    assert len(stored) >= 60 and set(stored) == {(1, 0)} and len(pruned) >= 3 and sum(pruned) >= 1
