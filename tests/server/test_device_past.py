"""One device's past: since when its verdict has held (``verdict_since`` on ``/api/v1/devices/{id}`` and
its page), and its compliance as of a past instant (``/api/v1/devices/{id}/compliance?at=``), the
question an audit of a past access asks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyagent.server.events import parse_batch
from pyagent.server.instants import parse_instant
from pyagent.server.store import Store
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"
#: (decision id, instant, allow): denied, allowed twice, denied, then allowed twice more, two of them
#: at one instant (the greater decision id is the later), and one sent late (older than the newest).
RUNS = [
    ("a-deny", "2023-03-16T09:00:00Z", False),
    ("b-allow", "2023-03-16T10:00:00Z", True),
    ("c-allow", "2023-03-16T11:00:00Z", True),
    ("d-deny", "2023-03-16T12:00:00Z", False),
    ("f-allow", "2023-03-16T13:00:00Z", True),
    ("e-deny", "2023-03-16T13:00:00Z", False),
    ("g-allow", "2023-03-16T14:00:00Z", True),
]


def _decide(store: Store, *runs: tuple[str, str, bool]) -> None:
    events = [decision_event(decision_id, at=at, allow=allow) for decision_id, at, allow in runs]
    batch = parse_batch(events)
    store.ingest(batch.rows, batch.reports)


def _since(store: Store) -> str:
    state = store.device(DEVICE, since=True)
    assert state is not None and state.verdict_since is not None
    return state.verdict_since.isoformat().replace("+00:00", "Z")


def test_verdict_since_is_the_first_decision_of_the_current_run(store: Store) -> None:
    _decide(store, RUNS[0])
    assert _since(store) == "2023-03-16T09:00:00Z"  # one decision: its own instant
    _decide(store, RUNS[1], RUNS[2])
    assert _since(store) == "2023-03-16T10:00:00Z"  # allowed since the first allow
    _decide(store, RUNS[3])
    assert _since(store) == "2023-03-16T12:00:00Z"
    _decide(store, RUNS[4], RUNS[5])  # at 13:00 "f-allow" is after "e-deny": allowed since 13:00
    assert _since(store) == "2023-03-16T13:00:00Z"
    _decide(store, RUNS[6], ("late-deny", "2023-03-16T09:30:00Z", False))  # a late upload of the past
    assert _since(store) == "2023-03-16T13:00:00Z"
    state = store.device(DEVICE)  # the access gate's read: no walk back through the history
    assert state is not None and (state.decision_id, state.verdict, state.verdict_since) == (
        "g-allow", "compliant", None
    )  # fmt: skip


def test_the_decision_that_held_at_an_instant(store: Store) -> None:
    _decide(store, *RUNS)
    asked = {
        "2023-03-16T08:59:59.999999Z": None,
        "2023-03-16T09:00:00Z": "a-deny",
        "2023-03-16T11:59:59Z": "c-allow",
        "2023-03-16T13:00:00Z": "f-allow",
        "2023-03-17T00:00:00Z": "g-allow",
    }
    for at, expected in asked.items():
        found = store.decision_at(DEVICE, parse_instant(at))
        assert (found.decision_id if found else None) == expected, at
    found = store.decision_at(DEVICE, parse_instant("2023-03-16T10:30:00Z"))
    assert found is not None and (found.allow, found.verdict) == (True, "compliant")
    assert found.decided_at == parse_instant("2023-03-16T10:00:00Z")
    assert store.decision_at("nobody", parse_instant("2023-03-17T00:00:00Z")) is None


def test_compliance_as_of_a_past_instant_and_since_when(fleet: Fleet) -> None:
    assert (
        fleet.post_logs([decision_event(i, at=at, allow=allow) for i, at, allow in RUNS]).status_code == 200
    )
    reader = fleet.auth("reader")

    def gate(at: str) -> dict[str, object]:
        answer = fleet.client.get(f"/api/v1/devices/{DEVICE}/compliance", params={"at": at}, headers=reader)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    assert gate("2023-03-16T10:30:00+01:00") == {  # 09:30 UTC: the first decision, a deny
        "device_id": DEVICE, "compliant": False, "stale": False, "as_of": "2023-03-16T09:00:00Z",
        "decision_id": "a-deny",
    }  # fmt: skip
    assert gate("2023-03-16T11:30:00Z") == {
        "device_id": DEVICE, "compliant": True, "stale": False, "as_of": "2023-03-16T11:00:00Z",
        "decision_id": "c-allow",
    }  # fmt: skip
    stale_by_then = (parse_instant("2023-03-16T14:00:00Z") + timedelta(days=2)).isoformat()
    assert gate(stale_by_then) == {
        "device_id": DEVICE, "compliant": False, "stale": True, "as_of": "2023-03-16T14:00:00Z",
        "decision_id": "g-allow",
    }  # fmt: skip
    assert gate("2023-03-15T00:00:00Z") == {
        "device_id": DEVICE, "compliant": False, "stale": False, "as_of": None, "decision_id": None
    }  # fmt: skip
    device = fleet.client.get(f"/api/v1/devices/{DEVICE}", headers=reader).json()
    assert (device["verdict"], device["verdict_since"]) == ("compliant", "2023-03-16T13:00:00Z")
    page = fleet.client.get(f"/devices/{DEVICE}", headers=reader).text
    # (stale now: a "compliant since" alone would be read as compliant now)
    assert "<dt>Compliant since (last decision; stale now)</dt><dd>2023-03-16T13:00:00Z</dd>" in page


def test_compliance_in_year_one_is_no_overflow(fleet: Fleet) -> None:
    """A decision dated in year 1 is one (no timestamp says otherwise): its gate as of that day was a
    500 (the instant minus stale_after overflowed)."""
    event = decision_event("first-day", at="0001-01-01T00:00:00Z", allow=True)
    del event["timestamp"]
    assert fleet.post_logs([event]).json()["stored"] == 1
    answer = fleet.client.get(
        f"/api/v1/devices/{DEVICE}/compliance",
        params={"at": "0001-01-01T12:00:00Z"},
        headers=fleet.auth("reader"),
    )
    assert (answer.status_code, answer.json()) == (200, {
        "device_id": DEVICE, "compliant": True, "stale": False, "as_of": "0001-01-01T00:00:00Z",
        "decision_id": "first-day",
    })  # fmt: skip


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("yesterday", "at='yesterday': expected an RFC 3339 timestamp, e.g. 2023-03-16T09:30:00Z"),
        ("", "at: given empty; leave it out to ask without it"),
        (
            "2023-03-16T09:30:00",
            "at='2023-03-16T09:30:00': expected an RFC 3339 timestamp, e.g. 2023-03-16T09:30:00Z",
        ),
        (  # a '+' left unencoded in a URL: the form decoding made it a space
            "2023-03-16T10:30:00 01:00",
            "at='2023-03-16T10:30:00 01:00': expected an RFC 3339 timestamp, e.g. 2023-03-16T09:30:00Z; "
            "a '+' in a query string reads as a space: write it as %2B",
        ),
    ],
)
def test_a_bad_instant_is_a_400_that_names_it(fleet: Fleet, at: str, message: str) -> None:
    answer = fleet.client.get(
        f"/api/v1/devices/{DEVICE}/compliance", params={"at": at}, headers=fleet.auth("reader")
    )
    assert (answer.status_code, answer.json()) == (400, {"code": "invalid_parameter", "message": message})


def test_an_instant_in_any_form_rfc_3339_allows_is_read_as_the_cli_reads_it(fleet: Fleet) -> None:
    """RFC 3339 allows "t" and "z" in lower case and any number of fraction digits; ``pyagent check
    --at`` reads them, and so do the API's instants (they were a 400), and an event's ``timestamp``."""
    event = decision_event("late-lower", at="2023-03-16T09:00:00Z", allow=True)
    event["timestamp"] = "2023-03-16t09:00:00.1234567891z"
    assert fleet.post_logs([event]).json()["stored"] == 1
    reader = fleet.auth("reader")
    for at in ("2023-03-16t09:30:00z", "2023-03-16T09:30:00.0000000001Z", "2023-03-16t10:30:00+01:00"):
        answer = fleet.client.get(f"/api/v1/devices/{DEVICE}/compliance", params={"at": at}, headers=reader)
        assert (answer.status_code, answer.json()) == (200, {
            "device_id": DEVICE, "compliant": True, "stale": False, "as_of": "2023-03-16T09:00:00Z",
            "decision_id": "late-lower",
        }), at  # fmt: skip
    summary = fleet.client.get("/api/v1/summary", params={"at": "2023-03-16t09:30:00z"}, headers=reader)
    assert (summary.status_code, summary.json()["compliant"]) == (200, 1)
    window = {"from": "2023-03-16t08:00:00z", "to": "2023-03-16t10:00:00z", "step": "1h"}
    history = fleet.client.get("/api/v1/history", params=window, headers=reader)
    assert (history.status_code, [point["compliant"] for point in history.json()["points"]]) == (
        200,
        [0, 1, 1],
    )


def test_a_device_page_says_since_when_without_stale_for_a_fresh_decision(fleet: Fleet) -> None:
    now = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fleet.post_logs([decision_event("fresh-deny", at=now, allow=False)]).status_code == 200
    page = fleet.client.get(f"/devices/{DEVICE}", headers=fleet.auth("reader")).text
    assert f"<dt>Non-compliant since</dt><dd>{now}</dd>" in page
