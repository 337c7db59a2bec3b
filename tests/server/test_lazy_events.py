"""The decision-log receiver's fast path (reports left raw, known ones not parsed again) against the
exact path (a full strict parse): the same rows and the same errors, whatever the bytes."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyagent.server import lazy_events
from pyagent.server.body import parse_json
from pyagent.server.errors import HttpError
from pyagent.server.events import Batch, parse_batch
from pyagent.server.lazy_events import LazyBatch, ReportCache, decode_batch
from tests.server.conftest import decision_event, example_report


def _body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()


def _run(event_index: int, at: str, collected_at: str, **changes: Any) -> dict[str, Any]:
    report = example_report()
    report["collected_at"] = collected_at
    report.update(changes)
    return decision_event(
        f"d{event_index}-{at}", at=at, report=report, bundles={"pyagent": {"revision": "r1"}}
    )


def _exact(body: bytes) -> Batch:
    return parse_batch(parse_json(body))


def _outcome(decode: Any) -> tuple[str, Any]:
    try:
        batch = decode()
    except HttpError as err:
        return "refused", (err.status, err.message)
    if isinstance(batch, LazyBatch):
        batch = batch.batch
    return "decided", (batch.rows, batch.ignored)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The reports the fast path parses, in order."""
    seen: list[bytes] = []
    parse = lazy_events._parsed

    def counted(raw: bytes, where: str) -> Any:
        seen.append(raw)
        return parse(raw, where)

    monkeypatch.setattr(lazy_events, "_parsed", counted)
    return seen


def test_a_first_batch_gives_the_exact_paths_rows_and_reports() -> None:
    other_path = {"decision_id": "o", "labels": {"id": "opa-1"}, "path": "system/authz/allow", "input": "x"}
    events = [
        _run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z"),
        {**_run(2, "2026-12-04T10:00:01Z", "2026-12-04T09:59:59Z"), "pyagent": {"seq": 7}},
        other_path,
    ]
    events[1].pop("result")
    body = _body(events)
    lazy = decode_batch(body, ReportCache())
    exact = _exact(body)
    assert lazy.batch.rows == exact.rows
    assert lazy.batch.reports == exact.reports
    assert (lazy.batch.ignored, len(lazy.batch.rows), len(lazy.batch.reports)) == (1, 2, 1)
    assert lazy.batch.rows[1].verdict == "undecided"


def test_a_known_report_is_not_parsed_again(parses: list[bytes]) -> None:
    cache = ReportCache()
    first = decode_batch(_body([_run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")]), cache)
    assert len(parses) == 1
    first.committed()
    body = _body([_run(2, "2026-12-04T11:00:00Z", "2026-12-04T10:59:57Z")])
    second = decode_batch(body, cache)
    assert len(parses) == 1  # the inventory was known: only its collected_at differs
    assert second.batch.reports == {}
    exact = _exact(body)
    assert second.batch.rows == exact.rows
    assert second.batch.rows[0].report_digest == first.batch.rows[0].report_digest
    assert second.batch.rows[0].collected_at == "2026-12-04T10:59:57Z"
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_nothing_is_remembered_before_its_batch_is_committed(parses: list[bytes]) -> None:
    cache = ReportCache()
    body = _body([_run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")])
    decode_batch(body, cache)  # the store failed: never committed
    again = decode_batch(body, cache)
    assert len(parses) == 2
    assert again.batch.reports == _exact(body).reports != {}


def test_a_changed_inventory_is_a_new_report() -> None:
    cache = ReportCache()
    decode_batch(_body([_run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")]), cache).committed()
    changed = _run(2, "2026-12-04T11:00:00Z", "2026-12-04T10:59:58Z")
    changed["input"]["report"]["apps"] = changed["input"]["report"]["apps"][1:]
    body = _body([changed])
    lazy = decode_batch(body, cache)
    assert lazy.batch.rows == _exact(body).rows
    assert lazy.batch.reports == _exact(body).reports != {}


def test_the_cache_is_bounded_least_recently_used_out() -> None:
    cache = ReportCache(entries=2)
    for device in ("a", "b", "c"):
        event = _run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")
        event["input"]["report"]["device"]["id"] = device
        decode_batch(_body([event]), cache).committed()
    assert len(cache) == 2


def _crafted(nested: str, *, top_escaped: bool) -> bytes:
    """A report whose only literal ``"collected_at"`` is nested in an app; its own key is escaped."""
    report = example_report()
    del report["collected_at"]
    report["apps"][0]["collected_at"] = nested
    event = decision_event("d-crafted-" + nested, report=report)
    text = _body([event]).decode()
    key = (
        '"collected\\u005fat":"2026-12-04T09:59:58Z",'
        if top_escaped
        else '"collected_at":"2026-12-04T09:59:58Z",'
    )
    return text.replace('"report":{', '"report":{' + key, 1).encode()


@pytest.mark.parametrize("top_escaped", [True, False])
def test_a_nested_collected_at_never_stands_for_the_reports_own(top_escaped: bool) -> None:
    cache = ReportCache()
    first = _crafted("2026-01-01T00:00:00Z", top_escaped=top_escaped)
    decode_batch(first, cache).committed()
    assert len(cache) == 0  # the literal key is not the report's own (or is there twice): never keyed
    second = _crafted("2026-02-02T00:00:00Z", top_escaped=top_escaped)
    lazy = decode_batch(second, cache)
    exact = _exact(second)
    assert lazy.batch.rows == exact.rows
    assert lazy.batch.rows[0].report_digest != _exact(first).rows[0].report_digest


DUPLICATES = [
    ('"decision_id":"d1-', '"decision_id":"x","decision_id":"d1-'),
    ('"allow":false', '"allow":true,"allow":false'),
    ('"id":"opa-test"', '"id":"opa-test","id":"opa-other"'),
    ('"device":{', '"device":{"id":"another",'),  # in the (known) report
    ('"id":"opa-test"', '"id":"a\\u003ab","id":"opa-test"'),  # an escaped colon to balance the count
]


@pytest.mark.parametrize(("find", "replace"), DUPLICATES)
def test_a_duplicate_key_is_refused_as_the_exact_path_refuses_it(find: str, replace: str) -> None:
    cache = ReportCache()
    warm = _body([_run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")])
    decode_batch(warm, cache).committed()
    body = warm.replace(find.encode(), replace.encode(), 1)
    assert body != warm
    outcome = _outcome(lambda: decode_batch(body, cache))
    assert outcome == _outcome(lambda: _exact(body))
    assert outcome[0] == "refused" and "duplicate key" in outcome[1][1]


def test_an_unknown_field_or_escape_takes_the_exact_path_with_the_same_rows() -> None:
    event = _run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")
    event["custom"] = {"team": "mobile"}
    event["labels"]["note"] = "a\u2028b"
    body = _body([event]).replace(b'"mobile"', b'"mob\\u003aile"')
    assert decode_batch(body, ReportCache()).batch.rows == _exact(body).rows


_WARM = _body([_run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z"),
               _run(2, "2026-12-04T10:00:05Z", "2026-12-04T10:00:03Z")])  # fmt: skip


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(_WARM.replace(b"10:00:0", b"11:00:0"))  # same inventories, a later run
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        piece = draw(st.sampled_from([b":", b",", b'"', b"\\", b"{", b"}", b"0", b"\xff", b"\\u003a", b" ",
                                       b'"id":"x",', b'"collected_at":"x",', b"NaN"]))  # fmt: skip
        if action == "replace":
            body[at : at + len(piece)] = piece
        elif action == "insert":
            body[at:at] = piece
        else:
            del body[at : at + draw(st.integers(1, 8))]
    return bytes(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_any_mutation_gets_the_exact_paths_answer(body: bytes) -> None:
    cache = ReportCache()
    decode_batch(_WARM, cache).committed()
    assert _outcome(lambda: decode_batch(body, cache)) == _outcome(lambda: _exact(body))


def test_a_batch_as_opa_sends_it_takes_the_fast_path(parses: list[bytes]) -> None:
    """Every field of an OPA event is decoded (the duplicate-key count holds): only reports are parsed."""
    events = [_run(n, f"2026-12-04T10:00:0{n}Z", "2026-12-04T09:59:58Z") for n in (1, 2)]
    for n, event in enumerate(events):
        event.update(requested_by="127.0.0.1:5000", req_id=n + 1, erased=["/input/password"], trace_id="t")
        event["input"]["report"]["device"]["id"] = f"phone-{n}"
    body = orjson.dumps(events)
    lazy = decode_batch(body, ReportCache())
    assert lazy.batch.rows == _exact(body).rows
    assert parses == [orjson.dumps(event["input"]["report"]) for event in events]


def _with_copy_before_report(copy: dict[str, Any], *, tail: str = "") -> bytes:
    """A known run again, with ``copy`` in ``nd_builtin_cache``, written before ``input``: the report's first
    bytes occur in the body before the report does."""
    event = _run(1, "2026-12-04T11:00:00Z", "2026-12-04T10:59:58Z")
    event = {"nd_builtin_cache": copy, **event}
    return _body([event]).replace(b'"timestamp":', f'{tail}"timestamp":'.encode(), 1)


COPIES = [
    ("a whole copy", lambda report: report, ""),
    ("a whole copy, then a duplicate key", lambda report: report, '"path":"pyagent/decision",'),
    ("a copy of the start only", lambda report: {**report, "zz": 1}, ""),
]


@pytest.mark.parametrize(("copy_of", "tail"), [(copy, tail) for _, copy, tail in COPIES],
                         ids=[name for name, _, _ in COPIES])  # fmt: skip
def test_a_reports_bytes_met_before_the_report_get_the_exact_paths_answer(copy_of: Any, tail: str) -> None:
    cache = ReportCache()
    warm = _run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")
    decode_batch(_body([warm]), cache).committed()
    report = {**warm["input"]["report"], "collected_at": "2026-12-04T10:59:58Z"}
    body = _with_copy_before_report(copy_of(report), tail=tail)
    assert body.count(_body([report])[1:65]) == 2  # the probe occurs twice
    outcome = _outcome(lambda: decode_batch(body, cache))
    assert outcome == _outcome(lambda: _exact(body))
    assert outcome[0] == ("refused" if tail else "decided")


@pytest.mark.parametrize("flaw", [b'"a":"\xff"', b'"a":1,"a":2'], ids=["invalid UTF-8", "a duplicate key"])
def test_a_new_report_of_an_ignored_event_is_checked_as_the_exact_path_checks_it(flaw: bytes) -> None:
    """msgspec leaves a raw report's UTF-8 and keys unchecked; an ignored event's is never parsed."""
    event = _run(1, "2026-12-04T10:00:00Z", "2026-12-04T09:59:58Z")
    event["path"] = "system/authz/allow"
    body = _body([event]).replace(b'"apps":', flaw + b',"apps":', 1)
    outcome = _outcome(lambda: decode_batch(body, ReportCache()))
    assert outcome == _outcome(lambda: _exact(body))
    assert outcome[0] == "refused"


@pytest.mark.parametrize(
    "report",
    [
        b'{"device":1,"x":1,"x":2}',  # not a device's report, and a duplicate key
        b'{"a":1,"a":2}',
        b'{"device":{"id":"d"},"x":1,"x":2}',
        b'{"device":{},"apps":[]}',  # no device id: ignored on both paths
        b'{"device":{"id":""}}',
    ],
)
def test_a_report_that_is_not_a_devices_gets_the_exact_paths_answer(report: bytes) -> None:
    event = decision_event("odd", at="2023-03-16T09:30:00Z")
    event["input"]["report"] = {"placeholder": True}
    body = _body([event, decision_event("good")]).replace(b'{"placeholder":true}', report)
    assert _outcome(lambda: decode_batch(body, ReportCache())) == _outcome(lambda: _exact(body))
