"""Events a real OPA logs as it was asked, which the store could not hold as they were: each is stored
(or refused as the fast parse refuses it), never a 5xx. OPA resends a refused batch forever (its
``sizeBuffer`` requeues the chunk on any error), so one crafted query on an OPA that logs to the
server held back every later decision it logged, and a device turned non-compliant read compliant."""

from __future__ import annotations

import gzip
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings
from pyagent.server.status import status_row
from pyagent.server.store import Store
from tests.server.conftest import decision_event


@dataclass
class Server:
    client: TestClient
    agent: dict[str, str]
    reader: dict[str, str]
    store: Store

    def post_logs(self, body: bytes) -> Any:
        headers = {**self.agent, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        return self.client.post("/logs", content=gzip.compress(body), headers=headers)

    def device(self, device_id: str) -> Any:
        return self.client.get(f"/api/v1/devices/{device_id}", headers=self.reader).json()


@pytest.fixture
def server(store: Store) -> Iterator[Server]:
    tokens = {}
    for role in ("agent", "reader"):
        secret = new_token()
        store.add_token(f"{role}-token", role, token_hash(secret))
        tokens[role] = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(ServerSettings(), store)) as client:
        yield Server(client, tokens["agent"], tokens["reader"], store)


def test_nul_in_stored_fields_is_kept_as_a_replacement_character(server: Server) -> None:
    """PostgreSQL refuses NUL in text (503 on every resend); SQLite kept it. Both now store U+FFFD."""
    poisoned = decision_event("d-nul", device_id="dev-nul")
    poisoned["input"]["report"]["device"]["organization"] = "eu\0commission"
    poisoned["input"]["report"]["collected_at"] = "2023-03-16T09:30:00Z\0"
    poisoned["result"]["organization"] = "eu\0commission"
    poisoned["result"]["violations"][0]["ban"] = "tik\0tok"
    later = decision_event("d-later", device_id="dev-later")
    reply = server.post_logs(json.dumps([poisoned, later]).encode())
    assert reply.status_code == 200, reply.text
    device = server.device("dev-nul")
    assert (device["decision_id"], device["allow"], device["organization"]) == (
        "d-nul",
        False,
        "eu\ufffdcommission",
    )
    assert server.device("dev-later")["decision_id"] == "d-later"


def test_deep_nesting_and_big_integers_are_stored(server: Server) -> None:
    """orjson parses 1,024 levels and writes 254; Python's ints have no 64-bit bound: both were 500s."""
    deep = decision_event("d-deep", device_id="dev-deep")
    nested: Any = "bottom"
    for _ in range(300):
        nested = [nested]
    deep["input"]["report"]["extra"] = {"nested": nested}
    deep["result"]["metrics"] = {"huge": 2**70}
    body = json.dumps([deep]).encode()
    assert server.post_logs(body).status_code == 200
    assert server.post_logs(body.replace(b'"bottom"', b'"bott\\u003aom"')).status_code == 200  # exact path
    device = server.device("dev-deep")
    assert (device["decision_id"], device["allow"]) == ("d-deep", False)


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_a_number_out_of_range_is_ignored_with_its_event(server: Server, exact: bool) -> None:
    """OPA logs ``1e400`` as it was asked; no parser here takes it (a double's range): that event is
    acknowledged and ignored (it was a 400 that OPA resends forever), the others stored."""
    event = decision_event("d-inf", device_id="dev-inf")
    event["input"]["report"]["extra"] = {"n": "HUGE"}
    other = decision_event("d-ok", device_id="dev-ok")
    other["labels"]["id"] = "opa\u003atest" if exact else "opa-test"  # an escaped colon: the exact path
    body = json.dumps([event, other]).replace('"HUGE"', "1e400").replace("\\\\u003a", "\\u003a")
    reply = server.post_logs(body.encode())
    assert reply.status_code == 200, reply.text
    assert (reply.json()["stored"], reply.json()["ignored"]) == (1, 1)
    assert server.device("dev-ok")["decision_id"] == "d-ok"
    assert server.client.get("/api/v1/devices/dev-inf", headers=server.reader).status_code == 404


def test_a_long_path_on_another_query_is_ignored(server: Server) -> None:
    other = decision_event("d-other")
    other["path"] = "x/" * 400
    reply = server.post_logs(json.dumps([other, decision_event("d-ok", device_id="dev-ok")]).encode())
    assert (reply.status_code, reply.json()["ignored"], reply.json()["stored"]) == (200, 1, 1)


def test_malformed_json_around_a_deep_event_still_refuses_the_batch(server: Server) -> None:
    deep = "[" * 2000 + "1" + "]" * 2000
    good = json.dumps(decision_event("d-ok", device_id="dev-ok"))
    too_deep = "body is not valid JSON: depth limit exceeded: line 1 column 1026 (char 1025)"
    for body, message in (  # the parser's first complaint stands (the depth, before what follows)
        (f"[{deep}, {good}] garbage", too_deep),
        (f"[{deep}, {good}][{good}]", too_deep),
        (f"\x0c[{deep}, {good}]",
         "body is not valid JSON: unexpected character, expected a JSON value: line 1 column 1 (char 0)"),
        ("[" + "[" * 1100 + '""' * 10_000 + "]" * 1100 + f", {good}]", too_deep),
        (f"[{'[' * 2000}1{'}' * 2000}, {good}]", too_deep),
    ):  # fmt: skip
        reply = server.post_logs(body.encode())
        assert (reply.status_code, reply.json()["message"]) == (400, message), body[:40]
    assert server.client.get("/api/v1/devices/dev-ok", headers=server.reader).status_code == 404


def test_a_huge_status_is_kept_bounded(server: Server) -> None:
    """72 KB of gzip had become 60 MB of errors, stored twice and read whole by the rollout page."""
    errors = [f"error {n}: " + "x" * 5000 for n in range(10_000)]
    message = {
        "labels": {"id": "dev-status", "version": "0.1.0"},
        "bundles": {"pyagent": {"active_revision": "r1", "code": "bundle_error", "errors": errors}},
    }
    body = gzip.compress(json.dumps(message).encode())
    headers = {**server.agent, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert server.client.post("/status", content=body, headers=headers).status_code == 204
    row = status_row(message)
    assert len(row.bundles) + len(row.errors) < 200_000
    [error] = json.loads(row.errors)
    assert error["errors"][-1] == "… (9980 more)"
    assert error["errors"][0] == "error 0: " + "x" * 2039 + "… (2961 more)"


def test_a_batch_over_many_days_is_stored(server: Server) -> None:
    """Each day is a partition on PostgreSQL, made in transactions of a few (one transaction for
    1,500 days had run out of lock slots)."""
    from datetime import date, timedelta

    days = [date(2022, 1, 1) + timedelta(days=n) for n in range(100)]
    events = [decision_event(f"d-{day}", device_id="dev-days", at=f"{day}T09:30:00Z") for day in days]
    assert server.post_logs(json.dumps(events).encode()).status_code == 200
    assert server.device("dev-days")["decision_id"] == f"d-{days[-1]}"


@pytest.mark.parametrize("depth", [990, 2_000, 9_000])
def test_an_event_nested_past_what_a_parser_takes_is_ignored_and_the_rest_stored(
    server: Server, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Go's JSON takes 10,000 levels, so an OPA logs such an input; no parser here takes the batch
    whole past 1,024 (near 1,000 the interpreter's stack gives out first): the event is acknowledged
    and counted as ignored, the others are stored, and the log says why (at 990 it said the input
    was no device's report)."""
    deep = decision_event("d-deep", device_id="dev-deep")
    deep["input"]["report"]["extra"] = {"nested": "HOLE"}
    text = json.dumps([deep, decision_event("d-ok", device_id="dev-ok")])
    body = text.replace('"HOLE"', "[" * depth + "1" + "]" * depth).encode()
    with caplog.at_level(logging.WARNING, logger="pyagent.server"):
        reply = server.post_logs(body)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("ignored ")] == [
        "ignored 1 decision-log event(s) nested too deep to read or holding a number out of a double's range"
    ]
    assert reply.status_code == 200, reply.text
    assert (reply.json()["stored"], reply.json()["ignored"]) == (1, 1)
    assert server.device("dev-ok")["decision_id"] == "d-ok"
    assert server.client.get("/api/v1/devices/dev-deep", headers=server.reader).status_code == 404


def test_a_malformed_event_beside_a_deep_one_still_refuses_the_batch(server: Server) -> None:
    deep = decision_event("d-deep", device_id="dev-deep")
    deep["input"]["report"]["extra"] = {"nested": "HOLE"}
    bad = decision_event("d-bad", device_id="dev-bad")
    bad["result"]["allow"] = "yes"
    body = json.dumps([deep, bad]).replace('"HOLE"', "[" * 2000 + "1" + "]" * 2000).encode()
    reply = server.post_logs(body)
    assert reply.status_code == 400
    assert reply.json()["message"] == "event 1: result.allow must be true or false, got 'yes'"


def test_a_status_whose_id_comes_after_a_hundred_labels_keeps_it(server: Server) -> None:
    labels = {f"k{n:03d}": "v" for n in range(100)}
    labels["id"] = "dev-labels"
    reply = server.client.post("/status", json={"labels": labels, "bundles": {}}, headers=server.agent)
    assert reply.status_code == 204
    row = status_row({"labels": labels})
    assert (row.instance_id, json.loads(row.labels)["id"], len(json.loads(row.labels))) == (
        "dev-labels",
        "dev-labels",
        102,  # the first 100, the "…" that says how many more, and the id
    )


@pytest.mark.parametrize("exact", [False, True], ids=["fast", "exact"])
def test_a_lone_surrogate_escape_is_refused_on_both_paths(server: Server, exact: bool) -> None:
    """Not Unicode text (Go's JSON, so OPA, never writes one). Taken by the exact path and stored, it
    had made every later read of the device a 500."""
    event = decision_event("d-s", device_id="dev-s")
    event["result"]["violations"][0]["message"] = "SURROGATE"
    event["labels"]["id"] = "opa-test"
    body = json.dumps([event]).replace('"SURROGATE"', '"a\\ud800b"')
    if exact:
        body = body.replace("opa-test", "opa\\u003atest")
    reply = server.post_logs(body.encode())
    message = reply.json()["message"]
    if exact:
        lone = "body is not valid JSON: a lone surrogate escape (\\ud800-\\udfff)"
        assert (reply.status_code, message) == (400, lone)
    else:
        assert reply.status_code == 400
        where = r"line 1 column \d+ \(char \d+\)"
        assert re.fullmatch(rf"body is not valid JSON: no low surrogate in string: {where}", message)
    assert server.client.get("/api/v1/devices/dev-s", headers=server.reader).status_code == 404


def test_a_status_is_bounded_in_all_and_however_deep() -> None:
    """Per-level bounds alone multiply (100 x 100 x 3 strings of 2 KB stored 61.7 MB); nesting of
    2,000 levels was a RecursionError (a 500) in redaction, which now sees the trimmed message."""
    wide = {f"p{n}": {f"q{m}": ["x" * 2048] * 3 for m in range(100)} for n in range(100)}
    row = status_row({"labels": {"id": "dev-wide"}, "plugins": wide})
    assert len(row.plugins) < 400_000
    deep: Any = "bottom"
    for _ in range(2000):
        deep = [deep]
    row = status_row({"labels": {"id": "dev-deep"}, "plugins": {"x": deep}})
    assert json.loads(row.plugins) == {"x": [[[["… (nested too deep)"]]]]}  # plugins at 1, x at 2


def test_an_event_without_a_path_is_another_query(server: Server) -> None:
    """OPA logs /v1/query and GET /v1/data decisions with no path at all (Go's omitempty)."""
    query = {k: v for k, v in decision_event("d-q").items() if k not in ("path", "input", "result")}
    query["query"] = "assign(x, 1)"
    reply = server.post_logs(json.dumps([decision_event("d-ok", device_id="dev-ok"), query]).encode())
    assert (reply.status_code, reply.json()["stored"], reply.json()["ignored"]) == (200, 1, 1)


def test_the_fallback_looks_at_a_bounded_body_only(server: Server) -> None:
    """2 M tokens of ``0,`` before a ``1e400`` (4 KB of gzip) had held the decode slot 25 s: past the
    fallback's bounds the body's own error stands."""
    body = b"[" + b"0," * 1_000_000 + b"1e400]"
    reply = server.post_logs(body)
    assert (reply.status_code, reply.json()["message"]) == (
        400,
        "body is not valid JSON: number is infinity when parsed as double: "
        "line 1 column 2000002 (char 2000001)",
    )


def test_a_status_s_labels_are_kept_whatever_comes_before_them() -> None:
    bulk = {f"p{n}": ["x" * 2048] * 20 for n in range(100)}
    row = status_row({"plugins": bulk, "labels": {"id": "dev-late", "region": "eu-west"}})
    assert json.loads(row.labels) == {"id": "dev-late", "region": "eu-west"}
