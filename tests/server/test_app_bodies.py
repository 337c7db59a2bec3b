"""The server in-process, bodies from the attacker's side: truncated and bomb gzip, deep or
duplicate-key JSON, too many values, oversized events, a malformed event in a batch; each refused with
its reason, nothing half-stored, the server unhurt."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from pyagent.server import body as body_module
from pyagent.server.body import MAX_CONTAINERS, MAX_VALUES, check_json_size
from pyagent.server.errors import HttpError
from tests.server.conftest import decision_event
from tests.server.inprocess import Fleet, MiB


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
    (  # the HTTP parser de-chunks it and drops the gzip coding: its bytes would be read as the body
        "gzip transfer coding",
        gzip.compress(b"[]"),
        {"Transfer-Encoding": "gzip, chunked"},
        501,
        "transfer coding 'gzip, chunked': only chunked is understood",
    ),
    (  # read as UTF-8, a Latin-1 body would be stored misread
        "latin-1",
        '[{"decision_id": "caf\u00e9"}]'.encode("latin-1"),
        {"Content-Type": "application/json; charset=ISO-8859-1"},
        415,
        "charset 'iso-8859-1': JSON is UTF-8",
    ),
    (  # it was reported as truncated gzip
        "data after gzip",
        gzip.compress(b"[]") + b"trailing",
        {"Content-Encoding": "gzip"},
        400,
        "body has data after its gzip stream that is not gzip",
    ),
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


#: 5 objects and arrays (two of them in strings), 2 commas and 2 colons (one in a string): 10 values.
SIZED = b'[{"a:{": [1, "[,"]}]'


@pytest.mark.parametrize("chunk", [1, 2, 7, 256 * 1024])
@pytest.mark.parametrize(
    ("containers", "values", "refusal"),
    [
        (5, 10, None),
        (4, 10, "body has over 4 JSON objects and arrays"),
        (5, 9, "body has over 9 JSON values and keys"),
    ],
)
def test_the_size_bounds_count_each_bracket_brace_comma_and_colon_once_however_chunked(
    monkeypatch: pytest.MonkeyPatch, chunk: int, containers: int, values: int, refusal: str | None
) -> None:
    monkeypatch.setattr(body_module, "_COUNT_CHUNK", chunk)
    monkeypatch.setattr(body_module, "MAX_CONTAINERS", containers)
    monkeypatch.setattr(body_module, "MAX_VALUES", values)
    if refusal is None:
        check_json_size(SIZED)
        return
    with pytest.raises(HttpError) as refused:
        check_json_size(SIZED)
    assert (refused.value.status, refused.value.message) == (413, refusal)


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
    "headers",
    [
        {"Content-Type": 'application/json; charset="UTF-8"', "Content-Encoding": "gzip"},
        {"Content-Type": "application/json", "Content-Encoding": "x-gzip"},  # gzip's old name, RFC 9110
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"},  # curl -d's
    ],
    ids=["utf-8-quoted", "x-gzip", "curl-form-type"],
)
def test_equivalent_media_types_and_encodings_are_taken(fleet: Fleet, headers: dict[str, str]) -> None:
    body = gzip.compress(json.dumps([decision_event("taken")]).encode())
    response = fleet.client.post("/logs", content=body, headers={**fleet.auth("agent"), **headers})
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0, "ignored": 0})
    assert fleet.history() == ["taken"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"decision_id": ""}, "event 1: decision_id must be a non-empty string, got ''"),
        ({"labels": {}}, "event 1: labels.id must be a non-empty string, got nothing"),
        ({"result": {"allow": "yes"}}, "event 1: result.allow must be true or false, got 'yes'"),
        ({"bundles": {"pyagent": {"revision": 7}}}, "event 1: bundles.pyagent.revision must be a string"),
        ({"timestamp": "yesterday"}, "event 1: timestamp must be an RFC 3339 timestamp"),
        ({"decision_id": "x" * 201}, "event 1: decision_id is longer than 200 characters"),
        (
            {"result": {"allow": False, "organization": "o" * 513, "violations": []}},
            "event 1: result.organization is longer than 512 characters",
        ),
        (
            {"result": {"allow": False, "violations": [{"rule": "r", "ban": "b" * 201}]}},
            "event 1: result.violations: a ban name is longer than 200 characters",
        ),  # kept in every row: a 36 KB gzip of 300 such names of 100 KB once took 90 MB to store
    ],
)
def test_a_malformed_event_refuses_the_whole_batch(fleet: Fleet, bad: dict[str, Any], reason: str) -> None:
    response = fleet.post_logs([decision_event("good"), {**decision_event("bad"), **bad}])
    assert response.status_code == 400
    assert response.json()["message"] == reason
    assert fleet.history() == []


@pytest.mark.parametrize(
    "result", [{"allow": True, "violations": []}, None], ids=["result-without-it", "no-result"]
)
def test_an_organisation_named_by_the_report_alone_is_bounded_too(
    fleet: Fleet, result: dict[str, Any] | None
) -> None:
    """Without ``result.organization`` the device's row takes the report's: 600 characters were
    stored (a column of 512; PostgreSQL would refuse the row)."""
    event = decision_event("long-org")
    event["input"]["report"]["device"]["organization"] = "o" * 600
    if result is None:
        del event["result"]
    else:
        event["result"] = result
    response = fleet.post_logs([decision_event("good"), event])
    message = "event 1: input.report.device.organization is longer than 512 characters"
    assert (response.status_code, response.json()["message"], fleet.history()) == (400, message, [])


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


def test_deflate_of_a_member_after_the_first_counts_too() -> None:
    from pyagent.server.body import _Gunzip

    two = gzip.compress(b"[1,") + gzip.compress(b"2]")
    assert _Gunzip(100).feed(two) == b"[1,2]"
    with pytest.raises(HttpError, match=r"^body is over the limit of 4 bytes after decompression$") as raised:
        _Gunzip(4).feed(two)
    assert (raised.value.status, raised.value.code, raised.value.close) == (413, "request_too_large", True)


def test_names_at_their_bounds_are_stored(fleet: Fleet) -> None:
    event = decision_event("bounds")
    event["result"].update(organization="o" * 512, violations=[{"rule": "r", "ban": "b" * 200}])
    assert fleet.post_logs([event]).status_code == 200
    assert fleet.history() == ["bounds"]
