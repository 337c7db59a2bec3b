"""What the server indexes of a decision (device id, decision id, organisation, violated bans), on
SQLite and on a real PostgreSQL: an organisation of up to 512 characters is kept whole (migration
0010) and found by its whole name; texts that one PostgreSQL index entry cannot hold are refused
(400, naming the event) on both stores, never a 503 that has the batch resent forever."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.events import MAX_INDEXED_BYTES
from pyagent.server.store import Store
from tests.server.conftest import decision_event
from tests.server.inprocess import LIMITS, Fleet
from tests.server.migrations import store_at

#: Random letters of 1, 3 and 4 bytes in UTF-8: index entries PostgreSQL cannot compress.
_ALPHABETS = {1: (0x61, 0x7A), 3: (0x4E00, 0x9FFF), 4: (0x20000, 0x2A6DF)}


def _noise(rng: random.Random, characters: int, width: int) -> str:
    low, high = _ALPHABETS[width]
    return "".join(chr(rng.randint(low, high)) for _ in range(characters))


@pytest.fixture
def fleet_on(store: Store) -> Iterator[Fleet]:
    with TestClient(create_app(LIMITS, store)) as client:
        yield Fleet(store, client)


def _event(device_id: str, decision_id: str, organization: str, ban: str) -> dict[str, Any]:
    event = decision_event(decision_id, device_id=device_id)
    event["input"]["report"]["device"]["organization"] = organization
    event["result"]["organization"] = organization
    event["result"]["violations"] = [{"rule": f"{organization}/{ban}", "ban": ban}]
    return event


def test_an_organization_of_512_characters_is_kept_whole_and_found_by_its_name(fleet_on: Fleet) -> None:
    organization = "directorate-" + "x" * 500
    cut = organization[:200]  # what the server kept before 0010
    assert fleet_on.post_logs([_event("dev-long-org", "d-1", organization, "tiktok")]).json()["stored"] == 1
    assert fleet_on.post_logs([_event("dev-cut-org", "d-2", cut, "tiktok")]).json()["stored"] == 1
    reader = fleet_on.auth("reader")
    device = fleet_on.client.get("/api/v1/devices/dev-long-org", headers=reader).json()
    assert device["organization"] == organization
    summary = fleet_on.client.get(f"/api/v1/summary?organization={organization}", headers=reader).json()
    assert (summary["devices"], list(summary["by_organization"])) == (1, [organization])
    listed = fleet_on.client.get(f"/api/v1/devices?organization={organization}", headers=reader).json()
    assert [d["device_id"] for d in listed["devices"]] == ["dev-long-org"]
    too_long = fleet_on.client.get(f"/api/v1/summary?organization={organization}x", headers=reader)
    assert (too_long.status_code, too_long.json()["message"]) == (
        400, "organization: expected 1-512 characters"
    )  # fmt: skip


def _at_the_bound(rng: random.Random, extra: int) -> dict[str, Any]:
    """An event whose indexed texts take ``MAX_INDEXED_BYTES + extra`` bytes: a device id of 512
    four-byte letters, the longest a report takes, and a platform of 32 (the report stored as sent:
    its platform is whatever it says, kept to 32 characters)."""
    device_id, decision_id, organization = _noise(rng, 512, 4), _noise(rng, 100, 1), _noise(rng, 60, 3)
    platform = _noise(rng, 32, 4)
    taken = sum(len(text.encode()) for text in (device_id, decision_id, organization, platform)) + len("||")
    ban = _noise(rng, MAX_INDEXED_BYTES - taken + extra, 1)
    event = _event(device_id, decision_id, organization, ban)
    event["input"]["report"]["device"]["platform"] = platform
    return event


def test_indexed_texts_up_to_the_bound_are_stored(fleet_on: Fleet) -> None:
    event = _at_the_bound(random.Random(2023), 0)
    response = fleet_on.post_logs([event])
    assert (response.status_code, response.json()["stored"]) == (200, 1)
    state = fleet_on.store.device(event["input"]["report"]["device"]["id"], history=5)
    assert state is not None and state.history[0]["decision_id"] == event["decision_id"]


def test_indexed_texts_past_the_bound_are_refused_naming_the_event(fleet_on: Fleet) -> None:
    rng = random.Random(2024)
    fine, over = decision_event("d-fine", device_id="dev-fine"), _at_the_bound(rng, 1)
    response = fleet_on.post_logs([fine, over])
    assert response.status_code == 400
    assert response.json()["message"] == (
        "event 1: the device id, decision id, organization, platform and violated ban names take 2,561 "
        "bytes of UTF-8 together; the server indexes at most 2,560"
    )
    assert fleet_on.history("dev-fine") == []  # the batch is all or nothing


def test_migration_0010_keeps_the_stored_organizations_and_refuses_a_downgrade_that_cuts(db_url: str) -> None:
    from alembic import command
    from sqlalchemy import insert

    from pyagent.server.store.schema import decisions

    store, config = store_at(db_url, "0009", [datetime(2023, 3, 16, tzinfo=UTC)])
    with store.engine.begin() as conn:  # a row stored before
        conn.execute(insert(decisions), [{
            "decision_id": "d-old", "decided_at": datetime(2023, 3, 16, tzinfo=UTC), "device_id": "dev",
            "sender": "opa", "path": "pyagent/decision", "organization": "eu-commission",
            "received_at": datetime(2023, 3, 17, tzinfo=UTC),
        }])  # fmt: skip
    assert store.migrate() == ["0010", "0011", "0012", "0013"]
    if store.dialect == "sqlite":  # the copy made the descending history index again
        with store.engine.connect() as conn:
            order = conn.exec_driver_sql("PRAGMA index_xinfo('ix_decisions_latest')").all()
        assert [(row[2], row[3]) for row in order if row[5]] == [
            ("device_id", 0), ("decided_at", 0), ("decision_id", 1), ("verdict", 0), ("organization", 0),
            ("platform", 0), ("bans", 0),
        ]  # fmt: skip
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT organization FROM decisions").scalars().all() == ["eu-commission"]
    with store.engine.begin() as conn:
        conn.execute(decisions.update().values(organization="o" * 201))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match=r"^1 row\(s\) of decisions name an organization longer than"):
            command.downgrade(config, "0009")
    store.close()
