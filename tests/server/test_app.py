"""The server's HTTP surface in-process (Starlette's test client, SQLite): auth, the Bundle API's
caching and long polling, the Decision Log and Status receivers, and bad input from the attacker's side."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.body import MAX_CONTAINERS, MAX_VALUES
from pyagent.server.errors import HttpError
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store, StoreError
from pyagent.server.store.base import BundleFile, NewRevision
from tests.server.conftest import decision_event

MiB = 1024 * 1024
NOT_GZIP = (  # after "bundle NAME"
    ": not a readable tar.gz: bad gzip stream (Error -3 while decompressing data: unknown compression method)"
)
LIMITS = ServerSettings(max_body_bytes=8 * MiB, max_decoded_bytes=16 * MiB)


class Fleet:
    """A server app with one token per role."""

    def __init__(self, store: Store, client: TestClient) -> None:
        self.store = store
        self.client = client
        self.tokens = {}
        for role in ("agent", "reader", "admin"):
            secret = new_token()
            store.add_token(f"{role}-token", role, token_hash(secret))
            self.tokens[role] = secret

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post_logs(self, events: Any, *, gzip_it: bool = True, **headers: str) -> Any:
        body = json.dumps(events).encode()
        sent = {**self.auth("agent"), "Content-Type": "application/json", **headers}
        if gzip_it:
            body = gzip.compress(body)
            sent.setdefault("Content-Encoding", "gzip")
        return self.client.post("/logs", content=body, headers=sent)

    def history(self, device: str = "fr-brussels-0042") -> list[str]:
        state = self.store.device(device, history=100)
        return [] if state is None else [h["decision_id"] for h in state.history]


@pytest.fixture
def fleet(sqlite_store: Store) -> Iterator[Fleet]:
    sqlite_store.publish(
        NewRevision(
            "pyagent",
            "r1",
            None,
            False,
            "test",
            [BundleFile("rego", '"etag-r1"', b"rego-r1"), BundleFile("wasm", '"etag-r1w"', b"wasm-r1")],
        )
    )
    with TestClient(create_app(LIMITS, sqlite_store)) as client:
        yield Fleet(sqlite_store, client)


# auth ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "role", "status"),
    [
        ("GET", "/bundles/pyagent", None, 401),
        ("GET", "/bundles/pyagent", "reader", 403),
        ("GET", "/bundles/pyagent", "admin", 403),
        ("GET", "/bundles/pyagent", "agent", 200),
        ("POST", "/logs", None, 401),
        ("POST", "/logs", "reader", 403),
        ("POST", "/status", "reader", 403),
        ("GET", "/api/v1/devices/x", None, 401),
        ("GET", "/api/v1/devices/x", "agent", 403),
        ("GET", "/api/v1/devices/x", "reader", 404),
        ("PUT", "/api/v1/bundles/pyagent", "agent", 403),
        ("PUT", "/api/v1/bundles/pyagent", "reader", 403),
        ("POST", "/status", None, 401),
        ("POST", "/logs", "admin", 403),
        ("GET", "/bundles/pyagent/wasm", None, 401),
        ("GET", "/bundles/pyagent/wasm", "reader", 403),
        ("GET", "/bundles/pyagent/wasm", "agent", 200),
        ("GET", "/api/v1/summary", "agent", 403),
        ("GET", "/api/v1/summary", "reader", 200),
        ("GET", "/api/v1/summary", "admin", 200),  # an admin may read what readers may
        ("GET", "/", "agent", 403),
        ("GET", "/", "reader", 200),
    ],
)
def test_roles(fleet: Fleet, method: str, path: str, role: str | None, status: int) -> None:
    headers = fleet.auth(role) if role else {}
    assert fleet.client.request(method, path, headers=headers).status_code == status


@pytest.mark.parametrize("header", ["Bearer pya_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "pya_x", "Bearer  "])
def test_wrong_tokens_are_401(fleet: Fleet, header: str) -> None:
    response = fleet.client.get("/bundles/pyagent", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="pyagent"'


def test_other_errors_carry_no_challenge(fleet: Fleet) -> None:
    response = fleet.client.get("/bundles/pyagent", headers=fleet.auth("reader"))
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


def test_a_revoked_token_is_refused_at_once(fleet: Fleet) -> None:
    assert fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent")).status_code == 200
    fleet.store.revoke_token("agent-token")
    assert fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent")).status_code == 401


def test_health_is_open(fleet: Fleet) -> None:
    response = fleet.client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_health_does_not_tell_anyone_where_the_database_is(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reason = "postgresql://pyagent@10.0.0.7:5432/fleet: connection refused"

    def down() -> None:
        raise StoreError(reason)

    monkeypatch.setattr(fleet.store, "ping", down)
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        response = fleet.client.get("/health")
    assert (response.status_code, response.json()) == (
        503, {"status": "unavailable", "message": "the database is not available"}
    )  # fmt: skip
    assert f"health: {reason}" in caplog.messages


@pytest.mark.parametrize(
    ("path", "role"),
    [("/api/v1/devices/%00", "reader"), ("/api/v1/devices/a%00/compliance", "reader"),
     ("/api/v1/rollout/%00", "reader"), ("/devices/%00", "reader"), ("/bundles/%00", "agent"),
     ("/bundles/pyagent%00/wasm", "agent")],
)  # fmt: skip
def test_a_nul_in_the_path_is_a_bad_request_before_any_route(fleet: Fleet, path: str, role: str) -> None:
    """No NUL reaches the database, where PostgreSQL would refuse it as if the database had failed."""
    response = fleet.client.get(path, headers=fleet.auth(role))
    assert (response.status_code, response.json()) == (
        400, {"code": "invalid_parameter", "message": "the request's path contains a NUL character"}
    )  # fmt: skip


# bundles ---------------------------------------------------------------------------------------


def test_bundle_etag_and_304(fleet: Fleet) -> None:
    first = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert (first.status_code, first.content, first.headers["etag"]) == (200, b"rego-r1", '"etag-r1"')
    assert first.headers["content-type"] == "application/gzip"
    wasm = fleet.client.get("/bundles/pyagent/wasm", headers=fleet.auth("agent"))
    assert (wasm.content, wasm.headers["etag"]) == (b"wasm-r1", '"etag-r1w"')
    again = fleet.client.get(
        "/bundles/pyagent", headers={**fleet.auth("agent"), "If-None-Match": '"etag-r1"'}
    )
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", '"etag-r1"')
    stale = fleet.client.get("/bundles/pyagent", headers={**fleet.auth("agent"), "If-None-Match": '"old"'})
    assert (stale.status_code, stale.content) == (200, b"rego-r1")
    missing = fleet.client.get("/bundles/nope", headers=fleet.auth("agent"))
    assert (missing.status_code, missing.json()["code"]) == (404, "bundle_not_found")


def test_long_poll_times_out_with_304_and_says_it_long_polls(fleet: Fleet) -> None:
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=1"}
    started = time.monotonic()
    response = fleet.client.get("/bundles/pyagent", headers=headers)
    waited = time.monotonic() - started
    assert response.status_code == 304
    assert response.headers["content-type"] == "application/vnd.openpolicyagent.bundles"
    assert 0.9 <= waited < 5


def test_long_poll_is_answered_by_a_publish(fleet: Fleet) -> None:
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=30"}
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        response = fleet.client.get("/bundles/pyagent", headers=headers)
        answer.update(status=response.status_code, body=response.content, took=time.monotonic() - started)

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "test", [BundleFile("rego", '"etag-r2"', b"rego-r2")])
    )
    waiter.join(timeout=10)
    assert (answer["status"], answer["body"]) == (200, b"rego-r2")
    assert answer["took"] < 5


# decision logs ---------------------------------------------------------------------------------


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


def _gzip_bomb(total: int) -> bytes:
    member = gzip.compress(bytes(100 * MiB), compresslevel=9)
    return member * (total // (100 * MiB))


def _deep(depth: int) -> bytes:
    """Not an array of events (an array of them, one this deep, is acknowledged with that one ignored:
    ``test_poison_events.py``)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


BAD_BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    (
        "truncated gzip",
        gzip.compress(json.dumps([decision_event("x")]).encode())[:-12],
        {"Content-Encoding": "gzip"},
        400,
        "body is truncated gzip (the stream ends before its end marker)",
    ),
    (
        "not gzip",
        b"\x1f\x8b\x08garbage",
        {"Content-Encoding": "gzip"},
        400,
        "body is not valid gzip: invalid header",
    ),
    (
        "deep json",
        _deep(10_000),
        {},
        400,
        "body is not valid JSON: depth limit exceeded: line 1 column 5122 (char 5121)",
    ),
    (
        "duplicate keys",
        b'[{"decision_id": "a", "decision_id": "b"}]',
        {},
        400,
        "body has a duplicate key 'decision_id'",
    ),
    (
        "NaN",
        b'[{"decision_id": NaN}]',
        {},
        400,
        "body is not valid JSON: unexpected character, expected a JSON value: line 1 column 18 (char 17)",
    ),
    (
        "wrong content type",
        b"[]",
        {"Content-Type": "text/plain"},
        415,
        "content type 'text/plain': expected application/json",
    ),
    ("brotli", b"[]", {"Content-Encoding": "br"}, 415, "content encoding 'br': expected gzip or identity"),
    (
        "not an array",
        b'{"decision_id": "x"}',
        {},
        400,
        "body must be a JSON array of decision-log events, got an object",
    ),
    (  # 3 bytes each, ~250 bytes each once parsed: the count is bounded before parsing
        "many empty objects",
        gzip.compress(b"[" + b"{}," * MAX_CONTAINERS + b"{}]"),
        {"Content-Encoding": "gzip"},
        413,
        f"body has over {MAX_CONTAINERS} JSON objects and arrays",
    ),
    (
        "many small values",
        gzip.compress(b"[" + b'"ab",' * MAX_VALUES + b"{}]"),
        {"Content-Encoding": "gzip"},
        413,
        f"body has over {MAX_VALUES} JSON values and keys",
    ),
    (  # keys count too: one object of many short pairs
        "many keys",
        gzip.compress(
            b'[{"decision_id":"k",' + b",".join(b'"k%d":0' % i for i in range(MAX_VALUES // 2)) + b"}]"
        ),
        {"Content-Encoding": "gzip"},
        413,
        f"body has over {MAX_VALUES} JSON values and keys",
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "headers", "status", "reason"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_bad_bodies_are_refused_with_a_reason(
    fleet: Fleet, what: str, body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    sent = {**fleet.auth("agent"), "Content-Type": "application/json", **headers}
    response = fleet.client.post("/logs", content=body, headers=sent)
    assert (response.status_code, response.json()["message"]) == (status, reason)
    if what.startswith("many"):  # status is JSON under the same bounds
        status_sent = {**fleet.auth("agent"), "Content-Type": "application/json", **headers}
        refused = fleet.client.post("/status", content=body, headers=status_sent)
        assert (refused.status_code, refused.json()["message"]) == (status, reason)
    assert fleet.post_logs([decision_event("after")]).status_code == 200  # unhurt
    assert fleet.history() == ["after"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"decision_id": ""}, "event 1: decision_id must be a non-empty string, got ''"),
        ({"labels": {}}, "event 1: labels.id must be a non-empty string, got nothing"),
        ({"result": {"allow": "yes"}}, "event 1: result.allow must be true or false, got 'yes'"),
        ({"bundles": {"pyagent": {"revision": 7}}}, "event 1: bundles.pyagent.revision must be a string"),
        ({"timestamp": "yesterday"}, "event 1: timestamp must be an RFC 3339 timestamp"),
        ({"decision_id": "x" * 201}, "event 1: decision_id is longer than 200 characters"),
    ],
)
def test_a_malformed_event_refuses_the_whole_batch(fleet: Fleet, bad: dict[str, Any], reason: str) -> None:
    response = fleet.post_logs([decision_event("good"), {**decision_event("bad"), **bad}])
    assert response.status_code == 400
    assert response.json()["message"] == reason
    assert fleet.history() == []


def test_oversized_bodies_are_413_and_nothing_is_stored(fleet: Fleet) -> None:
    huge_event = decision_event("huge")
    huge_event["input"]["report"]["extra"] = {"blob": "x" * (100 * MiB)}
    response = fleet.post_logs([decision_event("good"), huge_event])  # small on the wire, 100 MB inside
    over = {
        "code": "request_too_large",
        "message": "body is over the limit of 16777216 bytes after decompression",
    }
    assert (response.status_code, response.json()) == (413, over)
    bomb = fleet.client.post(
        "/logs",
        content=_gzip_bomb(5 * 1024 * MiB),
        headers={**fleet.auth("agent"), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert (bomb.status_code, bomb.json()) == (413, over)  # 5 GiB of zeros in 5 MB: stopped at 16 MiB
    wire = fleet.client.post("/logs", content=bytes(9 * MiB), headers=fleet.auth("agent"))
    assert (wire.status_code, wire.json()["code"]) == (413, "request_too_large")
    assert fleet.history() == []


def test_an_undefined_decision_is_stored_without_a_verdict(fleet: Fleet) -> None:
    event = decision_event("undefined")
    del event["result"]  # what OPA logs before its bundle is active
    assert fleet.post_logs([event]).status_code == 200
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and (state.allow, state.result) == (None, None)


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


# status ----------------------------------------------------------------------------------------


def test_credentials_quoted_in_a_status_are_redacted_before_readers_see_them(fleet: Fleet) -> None:
    """A sender's status may quote what its bundle server echoed (an older agent, a real OPA): readers
    see status messages on the API and the dashboard, so credentials never reach them."""
    quoted = "HTTP 401: token rejected (Authorization: Bearer agent-s3cret-0042)"
    fetched = "GET https://u:pw@b.example/x?token=abc: 401"
    message = {"labels": {"id": "fr-brussels-0042"}, "bundles": {"pyagent": {
        "active_revision": "r1", "code": "bundle_error", "message": quoted, "errors": [quoted, fetched],
    }}}  # fmt: skip
    assert fleet.client.post("/status", json=message, headers=fleet.auth("agent")).status_code == 204
    fleet.post_logs([decision_event("d-1", sender="fr-brussels-0042")])
    device = fleet.client.get("/api/v1/devices/fr-brussels-0042", headers=fleet.auth("reader")).json()
    redacted = "HTTP 401: token rejected (Authorization: Bearer ***)"
    bundle = device["status"]["bundles"]["pyagent"]
    assert (bundle["message"], bundle["errors"]) == (
        redacted,
        [redacted, "GET https://***@b.example/x?token=*** 401"],
    )
    page = fleet.client.get("/devices/fr-brussels-0042", headers=fleet.auth("reader")).text
    assert "agent-s3cret-0042" not in page


def test_status_lands_and_bad_status_is_400(fleet: Fleet) -> None:
    message = {
        "labels": {"id": "fr-brussels-0042", "version": "0.1.0"},
        "bundles": {
            "pyagent": {"active_revision": "r1", "last_successful_activation": "2023-03-16T09:00:00Z"}
        },
    }
    response = fleet.client.post("/status", json=message, headers=fleet.auth("agent"))
    assert response.status_code == 204
    assert fleet.client.post("/status", json={"labels": {}}, headers=fleet.auth("agent")).json()[
        "message"
    ] == ("status: labels.id must be a non-empty string, got nothing")
    fleet.post_logs([decision_event("d-1", sender="fr-brussels-0042")])
    device = fleet.client.get("/api/v1/devices/fr-brussels-0042", headers=fleet.auth("reader")).json()
    assert device["status"]["bundles"] == {
        "pyagent": {"active_revision": "r1", "last_successful_activation": "2023-03-16T09:00:00Z"}
    }
    assert (device["decision_id"], device["allow"], device["decided_at"]) == (
        "d-1",
        False,
        "2023-03-16T09:30:00Z",
    )


def test_deflate_of_a_member_after_the_first_counts_too() -> None:
    from pyagent.server.body import _Gunzip

    two = gzip.compress(b"[1,") + gzip.compress(b"2]")
    assert _Gunzip(100).feed(two) == b"[1,2]"
    with pytest.raises(HttpError, match=r"^body is over the limit of 4 bytes after decompression$") as raised:
        _Gunzip(4).feed(two)
    assert (raised.value.status, raised.value.code, raised.value.close) == (413, "request_too_large", True)


def test_settings_file_unknown_key_is_named(tmp_path: Path) -> None:
    from pyagent.errors import InvalidInputError
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text('[server]\nbind = "127.0.0.1:9"\nmax_bodyy = 5\n')
    with pytest.raises(InvalidInputError, match=r"server.toml: server.max_bodyy: unknown key"):
        load_settings(config)


@pytest.mark.parametrize(
    ("line", "seconds"),
    [('stale_after = "24h"', 86400), ('stale_after = "1h30m"', 5400), ('stale_after = "45s"', 45),
     ("stale_after = 600", 600), ("stale_after_seconds = 7200", 7200)],
)  # fmt: skip
def test_stale_after_as_a_duration_or_seconds(tmp_path: Path, line: str, seconds: int) -> None:
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text(f"[server]\n{line}\n")
    assert load_settings(config).stale_after_seconds == seconds


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            'stale_after = "1d"',
            'server.stale_after: must be a duration such as "24h", "90m" or "1h30m", or seconds',
        ),
        ('stale_after = "0s"', "server.stale_after: must be at least one second"),
        (
            'stale_after = "1h"\nstale_after_seconds = 60',
            "server.stale_after: give stale_after or stale_after_seconds",
        ),
    ],
)
def test_stale_after_refused_with_the_key_named(tmp_path: Path, lines: str, message: str) -> None:
    from pyagent.errors import InvalidInputError
    from pyagent.server.settings import load_settings

    config = tmp_path / "server.toml"
    config.write_text(f"[server]\n{lines}\n")
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config)
    assert str(refused.value).startswith(f"{config}: {message}")


# publishing over the API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rego_bundle(opa_bin: str, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    import subprocess

    from tests.helpers.opa_server import POLICY_DIRS

    out = tmp_path_factory.mktemp("rego") / "rego.tar.gz"
    subprocess.run(
        [opa_bin, "build", "-t", "rego", "--revision", "api-1", "--ignore", "*_test.rego", "-o", str(out),
         *map(str, POLICY_DIRS)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()


def test_admins_publish_over_the_api(fleet: Fleet, rego_bundle: bytes) -> None:
    files = {"rego": ("rego.tar.gz", rego_bundle, "application/gzip")}
    response = fleet.client.put("/api/v1/bundles/pyagent", files=files, headers=fleet.auth("admin"))
    assert response.status_code == 201, response.text
    assert response.json() == {
        "name": "pyagent", "revision": "api-1", "serial": None, "signed": False, "targets": ["rego"],
        "revision_id": 2, "note": "unsigned: no verification key is configured",
    }  # fmt: skip
    served = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert served.content == rego_bundle
    again = fleet.client.put("/api/v1/bundles/pyagent", files=files, headers=fleet.auth("admin"))
    assert (again.status_code, again.json()["message"]) == (
        409, "bundle pyagent: revision 'api-1' is already the current one"
    )  # fmt: skip
    raw = fleet.client.put("/api/v1/bundles/pyagent", content=rego_bundle, headers=fleet.auth("admin"))
    assert (raw.status_code, raw.json()["message"]) == (
        415,
        "content type '': send the bundles as multipart/form-data files, or one bundle as "
        "application/gzip or application/vnd.openpolicyagent.bundles",
    )
    junk = {"rego": ("junk.tar.gz", b"\x1f\x8bjunk", "application/gzip")}
    bad = fleet.client.put("/api/v1/bundles/pyagent", files=junk, headers=fleet.auth("admin"))
    assert (bad.status_code, bad.json()["message"]) == (400, "bundle junk.tar.gz" + NOT_GZIP)
    name = fleet.client.put("/api/v1/bundles/..%2Fx", files=files, headers=fleet.auth("admin"))
    assert (name.status_code, name.json()) == (
        404, {"code": "not_found", "message": "PUT /api/v1/bundles/../x: no such API route"}
    )  # fmt: skip
    name = fleet.client.put("/api/v1/bundles/-x", files=files, headers=fleet.auth("admin"))
    assert (name.status_code, name.json()["message"]) == (
        400, "bundle name '-x': use 1-200 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )  # fmt: skip


def _with_manifest(raw: bytes, revision: str, serial: int | None) -> bytes:
    """``raw`` (an unsigned bundle) with its ``.manifest`` naming ``revision`` and build ``serial``."""
    import io
    import tarfile

    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as copy,
    ):
        for member in source.getmembers():
            content = (source.extractfile(member) or io.BytesIO()).read()
            if member.name.lstrip("/") == ".manifest":
                manifest = {**json.loads(content), "revision": revision}
                if serial is not None:
                    manifest["metadata"] = {"pyagent": {"serial": serial}}
                content = json.dumps(manifest).encode()
            member.size = len(content)
            copy.addfile(member, io.BytesIO(content))
    return out.getvalue()


@pytest.mark.parametrize("media", ["application/gzip", "application/vnd.openpolicyagent.bundles"])
def test_one_bundle_as_the_body_is_published_and_ordered_without_a_key(
    fleet: Fleet, rego_bundle: bytes, media: str
) -> None:
    """No verification key: the manifest's serial, else the revision, must still be newer (409)."""
    headers = {**fleet.auth("admin"), "Content-Type": media}

    sent: list[bytes] = []

    def put(revision: str, serial: int | None) -> Any:
        sent.append(_with_manifest(rego_bundle, revision, serial))
        return fleet.client.put("/api/v1/bundles/pyagent", content=sent[-1], headers=headers)

    created = put("s5", 5)
    assert (created.status_code, created.json()) == (201, {
        "name": "pyagent", "revision": "s5", "serial": 5, "signed": False, "targets": ["rego"],
        "revision_id": 2, "note": "unsigned: no verification key is configured",
    })  # fmt: skip
    served = fleet.client.get("/bundles/pyagent", headers=fleet.auth("agent"))
    assert served.content == sent[0]  # as sent (a gzip header holds the second it was written)
    for revision, serial, message in [
        ("s4", 4, "bundle pyagent: serial 4 is not newer than the current serial 5 (revision s5)"),
        ("s5b", 5, "bundle pyagent: serial 5 is not newer than the current serial 5 (revision s5)"),
        ("r1", None, "bundle pyagent: revision 'r1' was published before; "
                     "it is not newer than the current revision 's5'"),
    ]:  # fmt: skip
        refused = put(revision, serial)
        assert (refused.status_code, refused.json()["message"]) == (409, message)
    assert put("s6", 6).status_code == 201
    head = fleet.store.bundle_head("pyagent", "rego")
    assert head is not None and (head.revision, head.serial) == ("s6", 6)
    bad = fleet.client.put("/api/v1/bundles/pyagent", content=b"\x1f\x8bjunk", headers=headers)
    assert (bad.status_code, bad.json()["message"]) == (400, "bundle body" + NOT_GZIP)


def test_one_bundle_as_the_body_is_bounded_while_read(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is read from a capped stream: past the bundle bound, 413 before it is all read."""
    monkeypatch.setattr("pyagent.server.api.MAX_BUNDLE_BYTES", 1024)
    headers = {**fleet.auth("admin"), "Content-Type": "application/gzip"}
    chunks = iter([b"\x1f\x8b" + b"\0" * 1022, b"\0" * 1024])  # streamed: no Content-Length
    response = fleet.client.put("/api/v1/bundles/pyagent", content=chunks, headers=headers)
    assert (response.status_code, response.json()["message"]) == (413, "body is over the limit of 1024 bytes")
    assert fleet.store.last_revision_id() == 1


def test_a_publish_is_bounded_by_max_body_like_every_body(sqlite_store: Store, rego_bundle: bytes) -> None:
    """CONTRACT section 7: bodies are bounded by --max-body; a publish too, declared or streamed."""
    limit = len(rego_bundle) - 1
    publisher = Fleet(
        sqlite_store, TestClient(create_app(ServerSettings(max_body_bytes=limit), sqlite_store))
    )
    with publisher.client:
        headers = {**publisher.auth("admin"), "Content-Type": "application/gzip"}
        declared = publisher.client.put("/api/v1/bundles/pyagent", content=rego_bundle, headers=headers)
        assert (declared.status_code, declared.json()["message"]) == (
            413, f"body of {len(rego_bundle)} bytes is over the limit of {limit} bytes"
        )  # fmt: skip
        streamed = publisher.client.put(
            "/api/v1/bundles/pyagent", content=iter([rego_bundle]), headers=headers
        )
        assert (streamed.status_code, streamed.json()["message"]) == (
            413,
            f"body is over the limit of {limit} bytes",
        )
        files = {"rego": ("rego.tar.gz", rego_bundle, "application/gzip")}
        form = publisher.client.put("/api/v1/bundles/pyagent", files=files, headers=publisher.auth("admin"))
        assert form.status_code == 413 and form.json()["message"].endswith(f"over the limit of {limit} bytes")
        assert sqlite_store.last_revision_id() == 0
    with TestClient(create_app(ServerSettings(max_body_bytes=limit + 1), sqlite_store)) as larger:
        headers = {**publisher.auth("admin"), "Content-Type": "application/gzip"}
        assert larger.put("/api/v1/bundles/pyagent", content=rego_bundle, headers=headers).status_code == 201


def test_a_bundle_of_another_source_beside_ours_is_kept(fleet: Fleet) -> None:
    bundles = {"pyagent": {"revision": "r1"}, "local-authz": {"revision": "a7"}}
    assert fleet.post_logs([decision_event("d-1", bundles=bundles)]).status_code == 200
    state = fleet.store.device("fr-brussels-0042")
    assert state is not None and state.bundles == bundles


def test_rollout_finds_a_bundle_its_sender_named_otherwise_by_its_published_revision(fleet: Fleet) -> None:
    """An OPA configured with bundles.fleet (resource bundles/pyagent) reports "fleet": its status and
    its decisions count toward pyagent's rollout by revision, and so does its refusal."""
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "test", [BundleFile("rego", '"e2"', b"rego-r2")])
    )
    bundles = {"fleet": {"revision": "r1"}, "local-authz": {"revision": "a7"}}
    assert fleet.post_logs([decision_event("d-1", bundles=bundles, sender="opa-fleet")]).json()["stored"] == 1
    refusing = {"labels": {"id": "opa-fleet"}, "bundles": {
        "local-authz": {"active_revision": "a7"},
        "fleet": {"active_revision": "r1", "code": "bundle_error", "message": "rego_parse_error"},
    }}  # fmt: skip
    assert fleet.client.post("/status", json=refusing, headers=fleet.auth("agent")).status_code == 204
    other = {
        "labels": {"id": "opa-other"},
        "bundles": {"other": {"active_revision": "x9", "code": "bundle_error"}},
    }
    assert fleet.client.post("/status", json=other, headers=fleet.auth("agent")).status_code == 204
    rollout = fleet.client.get("/api/v1/rollout/pyagent", headers=fleet.auth("reader")).json()
    assert (rollout["devices"], rollout["on_newest"], rollout["by_revision"]) == (1, 0, {"r1": 1})
    assert rollout["instances_by_revision"] == {"r1": 1}
    assert [(r["instance_id"], r["message"]) for r in rollout["refusals"]] == [
        ("opa-fleet", "rego_parse_error")
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/devices?orgnization=india", "orgnization: not a parameter of /api/v1/devices (it takes: "
         "organization, no_organization, platform, allow, compliant, stale, ban, cursor, limit, format)"),
        ("/api/v1/devices/fr-brussels-0042?at=2023-03-16T00:00:00Z",
         "at: not a parameter of /api/v1/devices/fr-brussels-0042 (it takes: history)"),
        ("/api/v1/devices/fr-brussels-0042/compliance?at=2023-03-16T00:00:00Z",
         "at: not a parameter of /api/v1/devices/fr-brussels-0042/compliance (it takes: none)"),
        ("/api/v1/summary?organisation=india",
         "organisation: not a parameter of /api/v1/summary "
         "(it takes: at, organization, no_organization, format)"),
        ("/api/v1/rollout/pyagent?at=2023-03-16T00:00:00Z",
         "at: not a parameter of /api/v1/rollout/pyagent (it takes: organization, no_organization)"),
        ("/api/v1/history?from=2023-03-14T00:00:00Z&to=2023-03-16T00:00:00Z&step=1d&every=1",
         "every: not a parameter of /api/v1/history "
         "(it takes: from, to, step, organization, no_organization)"),
    ],
)  # fmt: skip
def test_a_parameter_a_route_does_not_read_is_refused_by_name(fleet: Fleet, path: str, message: str) -> None:
    """A typo, or a question the route does not answer (compliance "as of"), gets no answer that
    looks like the one asked for."""
    response = fleet.client.get(path, headers=fleet.auth("reader"))
    assert (response.status_code, response.json()) == (400, {"code": "invalid_parameter", "message": message})


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


def test_status_plugins_in_opas_error_state_are_errors() -> None:
    """OPA's plug-in states are NOT_READY, OK, ERROR and WARN (older pyagent agents sent ERR)."""
    from pyagent.server.status import status_row

    plugins = {
        "bundle": {"state": "ERROR", "message": "download failed"},
        "decision_logs": {"state": "OK"},
        "status": {"state": "ERR", "message": "older agent"},
        "discovery": {"state": "WARN"},
    }
    row = status_row({"labels": {"id": "opa-1"}, "plugins": plugins})
    assert json.loads(row.errors) == [
        {"plugin": "bundle", "message": "download failed"},
        {"plugin": "status", "message": "older agent"},
    ]


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
