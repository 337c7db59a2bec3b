"""A page of devices shows each device's current state as its own page does (CONTRACT 8: the last
decision, last seen, the active bundle revision and the status errors): its status message when
it sends one as itself, else null (an OPA gateway reports as an instance of its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine

from pyagent.server.events import parse_batch
from pyagent.server.fleet_api import device_json
from pyagent.server.status import status_row
from pyagent.server.store import open_store
from pyagent.server.store.fleet import DeviceFilter
from tests.helpers.postgres import RunningPostgres
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"


def _listed(fleet: Fleet) -> list[dict[str, object]]:
    response = fleet.client.get("/api/v1/devices", headers=fleet.auth("reader"))
    assert response.status_code == 200
    return response.json()["devices"]


def test_a_device_without_a_status_lists_null(fleet: Fleet) -> None:
    assert fleet.post_logs([decision_event("d-1")]).status_code == 200
    [device] = _listed(fleet)
    assert (device["device_id"], device["status"]) == (DEVICE, None)


def test_a_devices_own_status_is_listed_as_on_its_page(fleet: Fleet) -> None:
    assert fleet.post_logs([decision_event("d-1")]).status_code == 200
    bundle = {"active_revision": "r1", "code": "bundle_error", "message": "signature verification failed"}
    message = {"labels": {"id": DEVICE}, "bundles": {"pyagent": bundle}}
    gateway = {"labels": {"id": "opa-7f3a"}, "bundles": {"pyagent": {"active_revision": "r2"}}}
    for sent in (message, gateway):
        answer = fleet.client.post("/status", json=sent, headers=fleet.auth("agent"))
        assert answer.status_code == 204
    [device] = _listed(fleet)
    page = fleet.client.get(f"/api/v1/devices/{DEVICE}", headers=fleet.auth("reader")).json()
    assert device["status"] == page["status"]
    assert device["status"]["instance_id"] == DEVICE
    assert device["status"]["bundles"]["pyagent"]["active_revision"] == "r1"
    assert [e["message"] for e in device["status"]["errors"]] == ["signature verification failed"]


def test_instants_are_utc_whatever_the_databases_time_zone(postgres: RunningPostgres) -> None:
    """A PostgreSQL database (or role) with another TimeZone: the list and the page still say UTC."""
    url = postgres.create_database("tokyo")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("ALTER DATABASE tokyo SET TimeZone = 'Asia/Tokyo'")
    engine.dispose()
    store = open_store(url)
    try:
        rows = parse_batch([decision_event("d-1", at="2023-03-16T09:30:00Z")]).rows
        store.ingest(rows, {})
        store.record_status(
            status_row({"labels": {"id": DEVICE}, "bundles": {"pyagent": {"active_revision": "r1"}}})
        )
        now = datetime.now(UTC)
        [listed], _ = store.device_page(DeviceFilter(), now=now, stale_after=timedelta(days=1))
        state = store.device(DEVICE, history=0, since=False)
        assert state is not None
        page = device_json(state, timedelta(days=1), now)
        assert listed["decided_at"] == page["decided_at"] == "2023-03-16T09:30:00Z"
        assert listed["status"]["last_seen"] == page["status"]["last_seen"]
        assert listed["status"]["last_seen"].endswith("Z") and listed["last_seen"].endswith("Z")
    finally:
        store.close()


def test_a_status_stored_before_a_redaction_rule_is_listed_redacted(fleet: Fleet) -> None:
    """Status is redacted as it is stored; one stored before a rule existed is redacted as it is read."""
    from sqlalchemy import update

    from pyagent.server.store.schema import instances

    assert fleet.post_logs([decision_event("d-1")]).status_code == 200
    message = {"labels": {"id": DEVICE}, "bundles": {"pyagent": {"code": "bundle_error", "message": "x"}}}
    assert fleet.client.post("/status", json=message, headers=fleet.auth("agent")).status_code == 204
    leaked = '[{"code": "bundle_error", "message": "GET https://u:pw@h/b Authorization: Bearer abc.def"}]'
    with fleet.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(update(instances).where(instances.c.instance_id == DEVICE).values(errors=leaked))
    [device] = _listed(fleet)
    assert device["status"]["errors"] == [
        {"code": "bundle_error", "message": "GET https://***@h/b Authorization: Bearer ***"}
    ]
