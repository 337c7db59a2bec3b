"""Agent tokens bound to one device (``token add --device``), from the attacker's side: a phone's
token, taken from it, cannot set another device's verdict or status; the whole batch is refused and
nothing of it is stored. An unbound agent token (an OPA logging many devices) reports for any."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store
from pyagent.server.store.schema import instances
from pyagent.server.store.sql import SqlStore
from tests.server.conftest import decision_event

PHONE = "fr-brussels-0042"
OTHER = "fr-brussels-0043"


class Tokens:
    def __init__(self, store: Store, client: TestClient) -> None:
        self.store, self.client = store, client
        self.phone, self.gateway, self.reader = new_token(), new_token(), new_token()
        store.add_token("phone-0042", "agent", token_hash(self.phone), PHONE)
        store.add_token("gateway-opa", "agent", token_hash(self.gateway))
        store.add_token("security", "reader", token_hash(self.reader))

    def logs(self, token: str, events: list[dict[str, Any]]) -> Any:
        headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
        return self.client.post("/logs", content=gzip.compress(json.dumps(events).encode()), headers=headers)

    def status(self, token: str, sender: str) -> Any:
        message = {
            "labels": {"id": sender, "version": "0.1.0"},
            "bundles": {"pyagent": {"active_revision": "r1"}},
        }
        return self.client.post("/status", json=message, headers={"Authorization": f"Bearer {token}"})

    def statuses(self) -> set[str]:
        """The senders whose status is stored."""
        assert isinstance(self.store, SqlStore)
        with self.store.engine.connect() as conn:
            return set(conn.execute(select(instances.c.instance_id)).scalars())

    def devices(self) -> list[str]:
        page = self.client.get("/api/v1/devices", headers={"Authorization": f"Bearer {self.reader}"})
        return sorted(d["device_id"] for d in page.json()["devices"])


@pytest.fixture
def tokens(sqlite_store: Store) -> Iterator[Tokens]:
    with TestClient(create_app(ServerSettings(), sqlite_store)) as client:
        yield Tokens(sqlite_store, client)


def test_a_bound_token_reports_its_own_device(tokens: Tokens) -> None:
    response = tokens.logs(tokens.phone, [decision_event("d-1", device_id=PHONE, sender=PHONE)])
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0, "ignored": 0})
    assert tokens.status(tokens.phone, PHONE).status_code == 204
    assert tokens.devices() == [PHONE]


def test_a_bound_token_cannot_decide_for_another_device(tokens: Tokens) -> None:
    batch = [decision_event("d-1", device_id=PHONE), decision_event("d-2", device_id=OTHER, allow=True)]
    response = tokens.logs(tokens.phone, batch)
    assert (response.status_code, response.json()["message"]) == (
        403,
        f"decision 'd-2' is for device {OTHER!r}; this token reports for device {PHONE!r} only",
    )
    assert tokens.devices() == []  # not even the phone's own decision of that batch
    # the same batch from an unbound token (a gateway OPA) is taken whole
    assert tokens.logs(tokens.gateway, batch).json() == {"stored": 2, "duplicates": 0, "ignored": 0}
    assert tokens.devices() == [PHONE, OTHER]


def test_a_bound_token_posts_its_own_devices_status_only(tokens: Tokens) -> None:
    """Another device's id (a forger, or a token bound by mistake to another device) and an OPA's
    instance id are refused: a status row is per sender, so one under another id would replace it."""
    other = decision_event("d-0", device_id=OTHER, sender=OTHER)
    assert tokens.logs(tokens.gateway, [other]).status_code == 200
    assert tokens.status(tokens.gateway, OTHER).status_code == 204  # an unbound token: as sent
    seen = tokens.store.device(OTHER)
    assert seen is not None and seen.status is not None
    for sender in (OTHER, "0d4f6a2e-opa-instance"):
        response = tokens.status(tokens.phone, sender)
        assert (response.status_code, response.json()) == (403, {"code": "forbidden_device", "message": (
            f"the status message (labels.id) is for device {sender!r}; "
            f"this token reports for device {PHONE!r} only"
        )})  # fmt: skip
    assert tokens.statuses() == {OTHER}
    assert tokens.store.device(OTHER) == seen  # its state and last_seen untouched
    assert tokens.status(tokens.phone, PHONE).status_code == 204
    assert tokens.statuses() == {OTHER, PHONE}


def test_a_bound_tokens_decisions_are_its_devices_whatever_labels_id_says(tokens: Tokens) -> None:
    event = decision_event("d-1", device_id=PHONE, sender="0d4f6a2e-opa-instance")
    assert tokens.logs(tokens.phone, [event]).json() == {"stored": 1, "duplicates": 0, "ignored": 0}
    state = tokens.store.device(PHONE, history=5)
    assert state is not None and state.sender == PHONE


def test_events_a_bound_token_sends_that_store_nothing_are_still_acknowledged(tokens: Tokens) -> None:
    """An event on another path (an OPA logs every query) names no device: nothing to vouch for."""
    other_path = {**decision_event("d-9", device_id=OTHER), "path": "system/health"}
    assert tokens.logs(tokens.phone, [other_path]).json() == {"stored": 0, "duplicates": 0, "ignored": 1}
    assert tokens.devices() == []


def test_the_api_document_says_why_a_report_is_forbidden(tokens: Tokens) -> None:
    document = tokens.client.get("/api/v1/openapi.json", headers={"Authorization": f"Bearer {tokens.reader}"})
    paths = document.json()["paths"]
    bound = "the token's role is not agent, or it is bound to another device"
    for path in ("/logs", "/logs/{partition}", "/status", "/status/{partition}"):
        assert paths[path]["post"]["responses"]["403"] == {"description": bound}
    assert paths["/bundles/{name}"]["get"]["responses"]["403"] == {
        "description": "the token's role is not agent"
    }


def test_a_bound_token_cannot_send_another_devices_decision_however_it_is_dated(tokens: Tokens) -> None:
    """Dated ahead of its arrival, or a what-if about a recent instant: ignored either way, but a
    decision about another device is refused first (403), as the docs promise."""
    ahead = decision_event("ahead", device_id=OTHER, at="2999-01-01T00:00:00Z")
    response = tokens.logs(tokens.phone, [ahead])
    assert (response.status_code, response.json()["message"]) == (
        403,
        f"decision 'ahead' is for device {OTHER!r}; this token reports for device {PHONE!r} only",
    )
