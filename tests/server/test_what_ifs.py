"""Decisions asked about another instant than when they were made (CONTRACT 7, docs/server.md rule 6)
told apart by row, not by decision id: a crafted batch that gives two events one id can neither slip a
fresh what-if past the rule nor have a real decision dropped in a what-if's place."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet

DEVICE = "fr-brussels-0042"
NOW = datetime.now(UTC).replace(microsecond=0)


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _event(decision_id: str, at: timedelta, *, asked: timedelta | None = None, **kw: Any) -> dict[str, Any]:
    """A decision about NOW + ``at``; stamped NOW + ``asked`` (a what-if) when given."""
    event = decision_event(decision_id, at=_rfc3339(NOW + at), **kw)
    if asked is not None:
        event["timestamp"] = _rfc3339(NOW + asked)
    return event


def _gate(fleet: Fleet) -> tuple[bool, str]:
    answer = fleet.client.get(f"/api/v1/devices/{DEVICE}/compliance", headers=fleet.auth("reader")).json()
    return answer["compliant"], answer["decision_id"]


def test_a_fresh_what_if_sharing_its_id_with_an_event_dated_ahead_is_still_ignored(fleet: Fleet) -> None:
    real = _event("real", -timedelta(hours=3), sender=DEVICE)
    what_if = _event("X", -timedelta(hours=2), asked=timedelta(0), allow=True, sender="gateway")
    ahead = _event("X", timedelta(days=30), allow=True, sender="gateway")
    assert fleet.post_logs([real, what_if, ahead]).json() == {"stored": 1, "duplicates": 0, "ignored": 2}
    assert _gate(fleet) == (False, "real")


def test_a_real_decision_sharing_its_id_with_a_stale_what_if_is_kept(fleet: Fleet) -> None:
    older = _event("older", -timedelta(hours=5), allow=True, sender=DEVICE)
    real = _event("Y", -timedelta(minutes=1), sender=DEVICE)
    what_if = _event("Y", -timedelta(days=30), asked=timedelta(0), allow=True, sender="gateway")
    assert fleet.post_logs([older, real, what_if]).json() == {"stored": 2, "duplicates": 1, "ignored": 0}
    assert _gate(fleet) == (False, "Y")


def test_the_log_counts_what_ifs_by_event(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    twins = [_event("Z", -timedelta(hours=2), asked=timedelta(0), allow=True, sender="gw") for _ in range(2)]
    stale = _event("S", -timedelta(days=30), asked=timedelta(0), sender="gw")
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        assert fleet.post_logs([*twins, stale]).json() == {"stored": 1, "duplicates": 0, "ignored": 2}
    assert [r.getMessage() for r in caplog.records] == [
        "1 decision(s) asked about another instant than when they were made (input.at over 1:00:00 from "
        "the event's timestamp: a replay or a what-if), taken at their input.at, stale already, e.g. "
        "event 2 ('S' from 'gw')",
        "ignored 2 decision(s) asked about another instant than when they were made (input.at over "
        "1:00:00 from the event's timestamp: a what-if) and not stale yet, which could pass access "
        "gating, e.g. event 0 ('Z' from 'gw')",
    ]
