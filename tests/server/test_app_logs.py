"""The server in-process, the Decision Log receiver: batches stored once, events it acknowledges
without storing (other paths, no device, dated ahead), results that cannot carry another device's
verdict, and what an OPA names its bundles and partitions."""

from __future__ import annotations

import gzip
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"


def test_logs_store_a_batch_and_dedupe(fleet: Fleet) -> None:
    events = [decision_event("d-1"), decision_event("d-2", at="2023-03-17T09:30:00Z")]
    response = fleet.post_logs(events)
    assert (response.status_code, response.json()) == (200, {"stored": 2, "duplicates": 0, "ignored": 0})
    assert fleet.post_logs(events, gzip_it=False).json() == {"stored": 0, "duplicates": 2, "ignored": 0}
    resent = decision_event("d-1", at="2023-03-18T09:30:00Z")  # same decision_id, another input.at
    assert fleet.post_logs([resent]).json() == {"stored": 0, "duplicates": 1, "ignored": 0}
    assert fleet.history() == ["d-2", "d-1"]


def test_events_on_other_paths_are_acknowledged_not_stored(fleet: Fleet) -> None:
    """An OPA logs every Data API query: one on another path must not stall its uploads."""
    other = {"decision_id": "q-1", "labels": {"id": "opa-1"}, "path": "pyagent/revision", "result": "r1"}
    no_input = {"decision_id": "q-2", "labels": {"id": "opa-1"}, "path": "system/bundles"}
    response = fleet.post_logs([other, decision_event("d-1"), no_input])
    assert response.json() == {"stored": 1, "duplicates": 0, "ignored": 2}
    assert fleet.history() == ["d-1"]
    broken = fleet.post_logs([{"labels": {"id": "opa-1"}, "path": "pyagent/revision"}])
    assert (broken.status_code, broken.json()["message"]) == (
        400,
        "event 0: decision_id must be a non-empty string, got nothing",
    )
    unlabelled = fleet.post_logs([{"decision_id": "d-2", "path": "pyagent/decision"}])
    assert (unlabelled.status_code, unlabelled.json()["message"]) == (
        400,
        "event 0: labels must be an object, got nothing",
    )


@pytest.mark.parametrize(
    "policy_input",
    [
        None,  # a query without input
        {"at": "2023-03-16T09:30:00Z"},  # without a report (OPA answers missing_organization)
        {"at": "2023-03-16T09:30:00Z", "report": "a text"},
        {"at": "2023-03-16T09:30:00Z", "report": {"device": {}}},  # no device id
        {"at": "yesterday", "report": {"device": {"id": "fr-brussels-0042"}}},
        {"at": "0001-01-01T00:00:00+01:00", "report": {"device": {"id": "fr-1"}}},  # year 0 in UTC
        {"at": "9999-12-31T23:59:59-01:00", "report": {"device": {"id": "fr-1"}}},  # year 10000
    ],
)
def test_decision_path_events_without_a_device_are_acknowledged_not_stored(
    fleet: Fleet, policy_input: dict[str, Any] | None
) -> None:
    """OPA logs whatever its Data API was asked on ``pyagent/decision``: a 400 would hold back every
    later decision of that OPA (it resends the batch forever), so such events are counted as ignored."""
    stray = {**decision_event("stray"), "input": policy_input}
    if policy_input is None:
        del stray["input"]
    response = fleet.post_logs([stray, decision_event("d-1")])
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0, "ignored": 1})
    assert fleet.history() == ["d-1"]


def test_a_decision_dated_after_its_arrival_is_ignored_and_cannot_pin_compliance(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """A compliant decision dated 2030 (a what-if query on a gating OPA, a crafted upload) would be the
    device's current state until 2030, whatever it does meanwhile; so it is not stored."""
    now = datetime.now(UTC).replace(microsecond=0)
    soon = (now + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")  # a clock a little ahead
    later = (now + timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
    events = [
        decision_event("future", at="2030-01-01T00:00:00Z", allow=True),
        decision_event("ahead", at=later, allow=True),
        decision_event("skewed", at=soon),
    ]
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.post_logs(events)
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0, "ignored": 2})
    assert fleet.history() == ["skewed"]
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored ")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "ignored 2 decision(s) dated after their arrival at "
    )
    assert warnings[0].endswith(
        "(e.g. future of 'fr-brussels-0042' from 'opa-test' at 2030-01-01T00:00:00+00:00)"
    )
    gate = fleet.client.get("/api/v1/devices/fr-brussels-0042/compliance", headers=fleet.auth("reader"))
    assert gate.json()["compliant"] is False and gate.json()["decision_id"] == "skewed"


def test_a_decision_asked_about_another_instant_is_stored_at_that_instant_and_said(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """An OPA asked about 2023-03-14 years later (a replay, a test, `pyagent check --engine opa --at
    2023-03-14`) stamps today: the decision is about 2023-03-14 and lands there, as an agent's late
    upload does; the log says so, since a what-if run through a logging OPA writes the fleet's past.
    An hour apart is one decision as it was made (the clocks of an agent and its OPA may differ)."""
    real = decision_event("real", at="2023-03-16T09:30:00Z")
    skewed = decision_event("skewed", at="2023-03-16T10:29:00Z")
    skewed["timestamp"] = "2023-03-16T09:30:00.5Z"
    replay = decision_event("replay", at="2023-03-14T00:00:00Z", allow=True)
    replay["timestamp"] = "2026-12-06T11:00:00.123456789Z"
    later = decision_event("asked-later", at="2023-03-16T12:00:00Z")
    later["timestamp"] = "2023-03-16T10:30:00Z"
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.post_logs([real, replay, skewed, later])
    assert (response.status_code, response.json()) == (200, {"stored": 4, "duplicates": 0, "ignored": 0})
    assert fleet.history() == ["asked-later", "skewed", "real", "replay"]
    assert [r.getMessage() for r in caplog.records] == [
        "2 decision(s) asked about another instant than when they were made (input.at over 1:00:00 from "
        "the event's timestamp: a replay or a what-if), taken at their input.at, stale already, e.g. "
        "event 1 ('replay' from 'opa-test')"
    ]
    reader = fleet.auth("reader")
    past = fleet.client.get("/api/v1/summary?at=2023-03-14T12:00:00Z", headers=reader).json()
    assert (past["devices"], past["compliant"], past["non_compliant"]) == (1, 1, 0)
    replay["result"]["device_id"] = "another-device"  # a malformed one is refused as any event is
    refused = fleet.post_logs([replay])
    assert (refused.status_code, refused.json()["message"]) == (
        400, "event 0: result.device_id 'another-device' is not the input's 'fr-brussels-0042'"
    )  # fmt: skip


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_a_what_if_about_an_instant_not_yet_stale_cannot_pass_access_gating(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """A gating OPA asked, now, about two hours ago (before an exemption ended, say): stored, its
    allow would be the device's fresh current state and pass the gate for the rest of stale_after."""
    now = datetime.now(UTC).replace(microsecond=0)
    real = decision_event("real", at=_rfc3339(now - timedelta(hours=3)), sender=DEVICE)
    what_if = decision_event("what-if", at=_rfc3339(now - timedelta(hours=2)), allow=True, sender="gateway")
    what_if["timestamp"] = _rfc3339(now)
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.post_logs([real, what_if])
    assert response.json() == {"stored": 1, "duplicates": 0, "ignored": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "ignored 1 decision(s) asked about another instant than when they were made (input.at over "
        "1:00:00 from the event's timestamp: a what-if) and not stale yet, which could pass access "
        "gating, e.g. event 1 ('what-if' from 'gateway')"
    ]
    gate = fleet.client.get(f"/api/v1/devices/{DEVICE}/compliance", headers=fleet.auth("reader")).json()
    assert (gate["compliant"], gate["decision_id"]) == (False, "real")


def test_a_what_if_dated_after_its_arrival_is_ignored_and_not_said_as_stored(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    future = decision_event("future", at="2030-01-01T00:00:00Z", allow=True)
    future["timestamp"] = "2026-12-06T11:00:00Z"
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.post_logs([future])
    assert response.json() == {"stored": 0, "duplicates": 0, "ignored": 1}
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith("ignored 1 decision(s) dated after their arrival at ")
    assert said.endswith("(e.g. future of 'fr-brussels-0042' from 'opa-test' at 2030-01-01T00:00:00+00:00)")


def test_a_decision_whose_input_is_no_devices_is_acknowledged_and_said_in_the_log(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Acknowledged (OPA would resend a refused batch forever, holding back every later decision),
    counted as ignored, and told in the server's log: a decision made and lost is never silent."""
    no_time = decision_event("no-time")
    no_time["input"]["at"] = "yesterday"
    query = decision_event("query")  # a query on the decision path without a report, and no result
    query["input"] = {"at": "2023-03-16T09:30:00Z"}
    del query["result"]
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.post_logs([decision_event("kept"), no_time, query])
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0, "ignored": 2})
    assert fleet.history() == ["kept"]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored ")] == [
        "ignored 1 decision(s) of pyagent/decision whose input is not a device's report (input.at not "
        "RFC 3339, or no device id), e.g. event 1 ('no-time' from 'opa-test')"
    ]


def test_an_inventory_seen_first_in_an_ignored_decision_is_stored_with_the_next(fleet: Fleet) -> None:
    """The report cache learns only inventories a batch stores: one seen first in a decision dated
    ahead (ignored) is stored with the device's next decision, not taken as stored already."""
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    later = decision_event("now")
    later["input"]["report"]["collected_at"] = "2023-03-16T09:31:00Z"  # the same inventory, another run

    def post(event: dict[str, Any]) -> Any:  # compact, as OPA and agents send it: the cache's key form
        body = gzip.compress(json.dumps([event], separators=(",", ":")).encode())
        headers = {**fleet.auth("agent"), "Content-Type": "application/json", "Content-Encoding": "gzip"}
        return fleet.client.post("/logs", content=body, headers=headers).json()

    assert post(decision_event("ahead", at=ahead))["ignored"] == 1
    assert post(later)["stored"] == 1
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and state.report_digest is not None
    assert fleet.store.report(state.report_digest) is not None


@pytest.mark.parametrize("key", ["violations", "warnings", "exempted", "errors"])
@pytest.mark.parametrize("entries", [["x"], "x", [{"ban": "tiktok"}, 1], {"ban": "tiktok"}])
def test_a_result_whose_lists_are_not_arrays_of_objects_is_refused(
    fleet: Fleet, key: str, entries: Any
) -> None:
    event = decision_event("d-1")
    event["result"][key] = entries
    response = fleet.post_logs([event])
    shown = json.dumps(entries, separators=(",", ":")) if isinstance(entries, list | dict) else repr(entries)
    assert (response.status_code, response.json()["message"]) == (
        400, f"event 0: result.{key} must be an array of objects, got {shown}"
    )  # fmt: skip
    assert fleet.history() == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("device_id", "someone-else", "event 0: result.device_id 'someone-else' is not the input's "
         "'fr-brussels-0042'"),
        ("evaluated_at", "2030-01-01T00:00:00Z",
         "event 0: result.evaluated_at '2030-01-01T00:00:00Z' is not the input's '2023-03-16T09:30:00Z'"),
    ],
)  # fmt: skip
def test_a_result_about_another_device_or_instant_is_refused(
    fleet: Fleet, key: str, value: str, message: str
) -> None:
    """The policy echoes what it decided for; one device's upload cannot carry another's verdict."""
    event = decision_event("d-1", allow=True)
    event["result"][key] = value
    response = fleet.post_logs([event])
    assert (response.status_code, response.json()["message"]) == (400, message)
    event["result"].update(device_id="fr-brussels-0042", evaluated_at="2023-03-16T09:30:00Z")
    assert fleet.post_logs([event]).json()["stored"] == 1


def test_a_device_page_shows_a_report_as_it_was_sent(fleet: Fleet) -> None:
    """Reports are stored as sent (a report the policy found invalid is a decision too): the device
    page lists what it can and shows the rest as JSON, never a 500."""
    shapes: list[Any] = ["nope", [1, {"id": "com.zhiliaoapp.musically"}, None], {"id": "x"}]
    for n, apps in enumerate(shapes):
        event = decision_event(f"d-{n}", device_id=f"odd-{n}")
        event["input"]["report"]["apps"] = apps
        assert fleet.post_logs([event]).json()["stored"] == 1
    pages = [fleet.client.get(f"/devices/odd-{n}", headers=fleet.auth("reader")) for n in range(len(shapes))]
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert "<code>&quot;nope&quot;</code>" in pages[0].text and "Apps (1)" in pages[0].text
    assert "<code>1</code>" in pages[1].text and "<code>com.zhiliaoapp.musically</code>" in pages[1].text
    assert "<code>null</code>" in pages[1].text and "Apps (3)" in pages[1].text
    assert "<code>x</code>" in pages[2].text and "Apps (1)" in pages[2].text


def test_a_device_id_ending_in_compliance_has_its_own_state(fleet: Fleet) -> None:
    """Ids may hold slashes: "a/compliance" (escaped as a%2Fcompliance) is a device of its own."""
    assert fleet.post_logs([decision_event("d-a", device_id="a", allow=True)]).json()["stored"] == 1
    assert fleet.post_logs([decision_event("d-ac", device_id="a/compliance")]).json()["stored"] == 1
    reader = fleet.auth("reader")
    state = fleet.client.get("/api/v1/devices/a%2Fcompliance", headers=reader).json()
    assert (state["device_id"], state["decision_id"]) == ("a/compliance", "d-ac")
    assert (
        fleet.client.get("/api/v1/devices/a%2fcompliance", headers=reader).json()["device_id"]
        == "a/compliance"
    )
    gate = fleet.client.get("/api/v1/devices/a/compliance", headers=reader).json()
    assert (gate["device_id"], gate["decision_id"]) == ("a", "d-a")
    gate = fleet.client.get("/api/v1/devices/a%2Fcompliance/compliance", headers=reader).json()
    assert (gate["device_id"], gate["decision_id"], gate["compliant"]) == ("a/compliance", "d-ac", False)
    assert fleet.client.get("/api/v1/devices/a%2Fcompliance").status_code == 401  # still a reader's


def test_an_undefined_decision_is_stored_without_a_verdict(fleet: Fleet) -> None:
    event = decision_event("undefined")
    del event["result"]  # what OPA logs before its bundle is active
    assert fleet.post_logs([event]).status_code == 200
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and (state.allow, state.result) == (None, None)


@pytest.mark.parametrize(
    ("listed", "verdict"),
    [({"violations": [{"rule": "eu-commission/tiktok", "ban": "tiktok"}]}, "non_compliant"),
     ({"errors": [{"code": "unknown_organization", "message": "unknown"}]}, "invalid")],
    ids=["violations", "errors"],
)  # fmt: skip
def test_an_allow_beside_a_violation_or_an_error_is_stored_as_no_allow(
    fleet: Fleet, listed: dict[str, Any], verdict: str
) -> None:
    """An OPA (compromised, or with a broken policy) that logs ``allow: true`` beside what denies."""
    event = decision_event("contradiction", allow=True)
    event["result"].update(listed)
    assert fleet.post_logs([event]).json() == {"stored": 1, "duplicates": 0, "ignored": 0}
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and (state.allow, state.verdict) == (False, verdict)
    assert state.result == event["result"]  # stored as sent: the page shows what the sender claimed


def test_chain_fields_travel_with_the_event(fleet: Fleet, sqlite_store: Store) -> None:
    event = {**decision_event("chained"), "pyagent": {"seq": 7, "hash": "ab", "prev_hash": "cd"}}
    assert fleet.post_logs([event]).status_code == 200
    from sqlalchemy import select

    from pyagent.server.store.schema import decisions
    from pyagent.server.store.sql import SqlStore

    assert isinstance(sqlite_store, SqlStore)
    with sqlite_store.engine.connect() as conn:
        chain = conn.execute(select(decisions.c.chain)).scalar_one()
    assert json.loads(chain) == {"seq": 7, "hash": "ab", "prev_hash": "cd"}


def test_an_agents_copy_of_a_decision_its_opa_logged_first_adds_its_chain(store: Store) -> None:
    """--engine opa: the OPA and the agent log one decision (one id). The OPA's copy arrived first, and
    the agent's, a duplicate, was acknowledged without its chain fields (decision-log audit). They are
    added to the stored row, never replacing any, and never to another device's or instant's row."""
    from sqlalchemy import select

    from pyagent.server.store.schema import decisions
    from pyagent.server.store.sql import SqlStore

    chain = {"seq": 7, "hash": "ab", "prev_hash": "cd"}
    opa = decision_event("shared", sender="opa-1")
    other = decision_event("elsewhere", device_id="other-device")
    with TestClient(create_app(ServerSettings(), store)) as client:
        fleet = Fleet(store, client)
        assert fleet.post_logs([opa, other]).status_code == 200
        copies = [
            {**decision_event("shared"), "pyagent": chain},  # the agent's copy: its chain is added
            {
                **decision_event("shared"),
                "pyagent": {"seq": 8, "hash": "x", "prev_hash": "y"},
            },  # none replaced
            {**decision_event("elsewhere"), "pyagent": chain},  # another device's row: not added
            {
                **decision_event("elsewhere", device_id="other-device", at="2023-03-17T00:00:00Z"),
                "pyagent": chain,
            },
        ]
        for copy in copies:
            answer = fleet.post_logs([copy])
            assert (answer.status_code, answer.json()["duplicates"]) == (200, 1)
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(decisions.c.decision_id, decisions.c.chain)).all())
    assert (json.loads(stored["shared"]), stored["elsewhere"]) == (chain, None)


def test_a_bundle_of_another_source_beside_ours_is_kept(fleet: Fleet) -> None:
    bundles = {"pyagent": {"revision": "r1"}, "local-authz": {"revision": "a7"}}
    assert fleet.post_logs([decision_event("d-1", bundles=bundles)]).status_code == 200
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and state.bundles == bundles


def test_a_bundle_is_kept_under_the_name_the_sender_gives_it(fleet: Fleet) -> None:
    """An OPA names its bundles locally (``bundles.fleet`` with ``resource: bundles/pyagent``): a
    400 for a name this server does not publish would make it resend its batch forever."""
    bundles = {"fleet": {"revision": "r1"}}
    assert fleet.post_logs([decision_event("d-1", bundles=bundles)]).json() == {
        "stored": 1,
        "duplicates": 0,
        "ignored": 0,
    }
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and state.bundles == bundles


def test_an_opa_with_partition_names_posts_to_the_same_receivers(fleet: Fleet) -> None:
    """OPA with ``decision_logs.partition_name`` / ``status.partition_name`` posts to ``/logs/NAME`` and
    ``/status/NAME``: stored as from ``/logs`` and ``/status``."""
    body = gzip.compress(json.dumps([decision_event("d-p", sender="fr-brussels-0042")]).encode())
    headers = {**fleet.auth("agent"), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert fleet.client.post("/logs/eu-west", content=body, headers=headers).status_code == 200
    status = {"labels": {"id": "fr-brussels-0042", "version": "0.1.0"}, "bundles": {}}
    assert fleet.client.post("/status/eu-west", json=status, headers=fleet.auth("agent")).status_code == 204
    assert fleet.history() == ["d-p"]
    assert fleet.client.post("/logs/eu-west", content=body, headers=fleet.auth("reader")).status_code == 403


def test_retention_is_off_unless_asked(sqlite_store: Store) -> None:
    """Old decisions (the 2023 bans) uploaded today stay: the default keeps the whole history."""
    assert ServerSettings().retention_days == 0
    secret = new_token()
    sqlite_store.add_token("agents", "agent", token_hash(secret))
    with TestClient(create_app(ServerSettings(), sqlite_store)) as client:
        body = json.dumps([decision_event("old", at="2020-01-01T00:00:00Z")])
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        assert client.post("/logs", content=body, headers=headers).status_code == 200
        time.sleep(0.3)  # the retention job has had its first turn
    state = sqlite_store.device("fr-brussels-0042", history=5)
    assert state is not None and [h["decision_id"] for h in state.history] == ["old"]
