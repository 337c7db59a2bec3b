"""Decision ids are compared by code point on every store, as the ingest compares them in Python:
on a PostgreSQL database collated by ICU's ``en-US`` (a distribution's default is a locale, not "C"),
two decisions of one device at one instant, ``B-…`` and ``a-…``, gave a current state of one and a
history of the other, and which one was current depended on how they were batched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.instants import parse_instant
from pyagent.server.store import Store, open_store
from pyagent.server.store.sql import SqlStore
from tests.helpers.postgres import RunningPostgres
from tests.server.conftest import decision_event

AT = "2023-03-16T09:30:00Z"
NOW = parse_instant("2023-03-16T10:00:00Z")
DAY = timedelta(days=1)


@pytest.fixture
def en_us_store(postgres: RunningPostgres, request: pytest.FixtureRequest) -> Iterator[Store]:
    name = "icu_" + request.node.name.lower().replace("test_", "")[:40]
    opened = open_store(postgres.create_database(name, icu_locale="en-US"))
    yield opened
    opened.close()


def _ingest(store: Store, *events: dict[str, object]) -> None:
    batch = parse_batch(list(events))
    store.ingest(batch.rows, batch.reports)


def _views(store: Store, device_id: str) -> tuple[str, list[str], int, int, int]:
    """The device's current decision, its history, and the non-compliant count now, at NOW, and
    in the history's step at NOW."""
    state = store.device(device_id, history=5)
    assert state is not None
    counts = [
        store.summary(now=NOW, at=at, organization=None, stale_after=DAY)["non_compliant"]
        for at in (None, NOW)
    ]
    [step] = store.history([NOW], organization=None, stale_after=DAY)
    return (
        state.decision_id,
        [h["decision_id"] for h in state.history],
        *counts,
        step["non_compliant"],
    )


def test_equal_instants_go_to_the_greater_id_by_code_point_whatever_the_database_collation(
    en_us_store: Store,
) -> None:
    assert isinstance(en_us_store, SqlStore)
    with en_us_store.engine.connect() as conn:
        collations = conn.exec_driver_sql(
            "SELECT table_name, collation_name FROM information_schema.columns "
            "WHERE column_name = 'decision_id' AND table_name IN ('decisions', 'decision_ids', 'devices') "
            "ORDER BY table_name"
        ).all()
    assert [tuple(row) for row in collations] == [("decision_ids", "C"), ("decisions", "C"), ("devices", "C")]
    # "a-…" is the greater by code point (0x61 > 0x42); en-US puts it first
    _ingest(
        en_us_store,
        decision_event("B-compliant", at=AT, device_id="one-batch", allow=True),
        decision_event("a-breach", at=AT, device_id="one-batch"),
    )
    assert _views(en_us_store, "one-batch") == ("a-breach", ["a-breach", "B-compliant"], 1, 1, 1)
    _ingest(en_us_store, decision_event("a-breach-2", at=AT, device_id="two-batches"))
    _ingest(en_us_store, decision_event("B-compliant-2", at=AT, device_id="two-batches", allow=True))
    assert _views(en_us_store, "two-batches") == ("a-breach-2", ["a-breach-2", "B-compliant-2"], 2, 2, 2)
