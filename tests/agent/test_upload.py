"""Uploading the spool as OPA decision-log events: oldest first, batched by gzip size, marked shipped only
after a 2xx, re-sent after failures (stored once), and a refused event set aside with its reason."""

from __future__ import annotations

import gzip
import json
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyagent import __version__
from pyagent.agent.chain import ChainKey
from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.logs import DecisionLogPlugin, event_of, gzip_array, gzip_batches
from pyagent.agent.plugins.status import logs_status
from pyagent.agent.store import Spool
from pyagent.config.opa import DecisionLogs, Service
from tests.agent.collector import CollectorState, run_collector
from tests.agent.conftest import decided, run_pyagent


@pytest.fixture
def collector() -> Iterator[CollectorState]:
    with run_collector() as state:
        yield state


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool.open(tmp_path / "spool.sqlite", key=ChainKey()) as opened:
        for i in range(12):
            opened.append(decided(i), max_records=100)
        yield opened


def plugin(url: str, *, limit: int = 32768) -> DecisionLogPlugin:
    config = DecisionLogs(service="logs", upload_size_limit_bytes=limit, min_delay=1, max_delay=2)
    return DecisionLogPlugin(
        config, ServiceClient(Service("logs", url, timeout=2)), {"fleet": "t"}, rng=random.Random(1)
    )


def test_every_record_goes_once_as_an_opa_event(spool: Spool, collector: CollectorState) -> None:
    delay = plugin(collector.url).step(spool)
    assert 1 <= delay <= 2
    rows = spool.records()
    assert collector.hashes_received() == [r.hash for r in rows]  # oldest first, one batch
    assert len(collector.requests) == 1 and spool.counts() == (12, 0)
    event = collector.stored[rows[0].hash]
    assert event == {
        "decision_id": "d-0",
        "labels": {"fleet": "t", "id": "laptop-17", "version": __version__},
        "path": "pyagent/decision",
        "input": json.loads(rows[0].body)["input"],
        "timestamp": "2023-03-16T09:30:00Z",
        "metrics": {"timer_pyagent_decide_ns": 1000},
        "pyagent": {"seq": 1, "hash": rows[0].hash, "prev_hash": "0" * 64},
        "bundles": {"pyagent": {"revision": "r1"}},
        "result": json.loads(rows[0].body)["decision"],
    }
    assert plugin(collector.url).step(spool) >= 1 and len(collector.requests) == 1  # nothing left


def test_batches_stay_under_upload_size_limit_bytes(spool: Spool, collector: CollectorState) -> None:
    events = [(r.seq, json.dumps(event_of(r, {})).encode()) for r in spool.records()]
    one = len(gzip_array(events[:1]))
    batches, too_large = gzip_batches(events, one * 3)
    assert too_large == [] and len(batches) > 1
    assert [seq for batch in batches for seq, _ in batch] == list(range(1, 13))
    assert all(len(gzip_array(batch)) <= one * 3 for batch in batches)
    assert plugin(collector.url, limit=one * 3).step(spool) >= 1
    assert len(collector.requests) == len(batches)
    assert all(r.gzip_bytes <= one * 3 for r in collector.requests)
    assert gzip_batches(events, one - 10) == ([], list(range(1, 13)))


def test_an_event_too_large_for_the_limit_is_set_aside_and_offered_again_once_it_is_higher(
    spool: Spool, collector: CollectorState
) -> None:
    events = [(r.seq, json.dumps(event_of(r, {})).encode()) for r in spool.records()]
    small = len(gzip_array(events[:1])) - 10  # every event is over it, alone
    assert plugin(collector.url, limit=small).upload(spool) is None
    count, aside = spool.set_aside_list()
    assert count == 12 and collector.requests == []
    assert {(e["retry"], e["size_limit"]) for e in aside} == {(False, small)}
    assert aside[0]["reason"] == f"the event is over upload_size_limit_bytes ({small}) even gzipped, alone"
    assert plugin(collector.url, limit=small).upload(spool) is None  # the same limit: not offered again
    assert collector.requests == [] and spool.set_aside_list()[0] == 12
    assert plugin(collector.url).upload(spool) is None  # a higher limit: offered again, and stored
    assert collector.hashes_received() == [r.hash for r in spool.records()]
    assert spool.set_aside_list() == (0, []) and spool.counts() == (12, 0)


def test_a_step_whose_every_event_was_set_aside_is_not_an_upload_that_went_well(
    spool: Spool, collector: CollectorState
) -> None:
    """Nothing was accepted: agent status said "ok at ..." and the status message no error."""
    events = [(r.seq, json.dumps(event_of(r, {})).encode()) for r in spool.records()]
    uploader = plugin(collector.url, limit=len(gzip_array(events[:1])) - 10)  # every event over it
    uploader.step(spool)
    assert (uploader.state.last_ok_at, uploader.state.last_error) == (
        None, "none of the 12 event(s) offered was accepted: set aside (agent status)"
    )  # fmt: skip
    uploader.config = DecisionLogs(service="logs", upload_size_limit_bytes=32768, min_delay=1, max_delay=2)
    uploader.step(spool)  # offered again under a limit they fit: accepted
    assert uploader.state.last_error is None and uploader.state.last_ok_at is not None


def test_a_refused_event_is_found_by_bisection_set_aside_and_offered_again_until_a_2xx(
    spool: Spool, collector: CollectorState
) -> None:
    collector.refuse = lambda event: event["decision_id"] == "d-6"
    notices: list[tuple[str, dict[str, object]]] = []
    uploads = plugin(collector.url)
    uploads.notify = lambda event, text, fields: notices.append((event, fields))
    assert uploads.upload(spool) is None
    rows = {r.seq: r for r in spool.records()}
    assert set(collector.stored) == {r.hash for seq, r in rows.items() if seq != 7}
    assert spool.counts() == (12, 0)
    count, aside = spool.set_aside_list()
    assert count == 1 and aside[0]["seq"] == 7 and aside[0]["retry"] is True
    assert aside[0]["reason"] == (f"refused by {collector.url}/logs: HTTP 400: event refused by the test")
    assert rows[7].shipped_at is not None and rows[7].shipped_at.startswith("set aside ")
    assert [event for event, _ in notices] == ["event_set_aside"] and uploads.state.set_aside == 1
    assert logs_status(uploads) == {"set_aside": 1}  # the upload succeeded; one event waits aside

    # the next upload offers it again, alone, before the new records; still refused: still set aside,
    # with the newer records sent all the same and no second notice
    spool.append(decided(12), max_records=100)
    sent = len(collector.requests)
    assert uploads.upload(spool) is None
    assert [r.hashes for r in collector.requests[sent:]] == [[rows[7].hash], [spool.records()[-1].hash]]
    assert spool.counts() == (13, 0) and spool.set_aside_list()[0] == 1 and len(notices) == 1

    # the server takes it: shipped, no longer set aside, sent once more by no later upload
    collector.refuse = None
    assert uploads.upload(spool) is None
    assert rows[7].hash in collector.stored and spool.set_aside_list() == (0, [])
    shipped_at = spool.records()[6].shipped_at
    assert uploads.state.set_aside == 0 and shipped_at is not None and not shipped_at.startswith("set aside")
    sent = len(collector.requests)
    assert uploads.upload(spool) is None and len(collector.requests) == sent


def test_events_offered_again_go_in_one_request_then_one_each_without_halving(
    spool: Spool, collector: CollectorState
) -> None:
    """Three events the server keeps refusing: the first pass halves the batch down to them; the next
    offers them in one request, then one each (4 requests, not the 5 of halving again)."""
    refused = {"d-2", "d-6", "d-9"}
    collector.refuse = lambda event: event["decision_id"] in refused
    uploads = plugin(collector.url)
    assert uploads.upload(spool) is None and spool.set_aside_list()[0] == 3
    sent = len(collector.requests)
    assert uploads.upload(spool) is None
    hashes = {r.seq: r.hash for r in spool.records()}
    assert [r.hashes for r in collector.requests[sent:]] == [
        [hashes[3], hashes[7], hashes[10]], [hashes[3]], [hashes[7]], [hashes[10]],
    ]  # fmt: skip
    assert spool.set_aside_list()[0] == 3 and uploads.state.set_aside == 3


def test_a_set_aside_event_dropped_by_the_bound_counts_as_unshipped(
    spool: Spool, collector: CollectorState
) -> None:
    collector.refuse = lambda event: event["decision_id"] == "d-0"
    assert plugin(collector.url).upload(spool) is None
    assert spool.set_aside_list()[0] == 1 and spool.state().dropped_unshipped == 0
    spool.append(decided(12), max_records=12)  # the oldest record, the one set aside, goes
    state = spool.state()
    assert (state.dropped, state.dropped_unshipped) == (1, 1)
    assert spool.set_aside_list() == (0, []) and spool.to_retry(10) == []


def test_a_spool_set_aside_by_an_older_agent_is_offered_again_when_the_server_refused_it(
    spool: Spool, collector: CollectorState
) -> None:
    reasons = {
        3: f"refused by {collector.url}/logs: HTTP 400: bad",
        4: "no policy input to log: the run was invalid",
    }
    for seq, reason in reasons.items():
        spool.set_aside(seq, "2023-03-16T09:31:00Z", reason, retry=False)
    older = {
        f"aside.{seq:020d}": json.dumps({"seq": seq, "at": "x", "reason": r}) for seq, r in reasons.items()
    }
    spool._set_meta(**older)  # entries as agents before "retry" wrote them
    assert [row.seq for row in spool.to_retry(10)] == [3]
    assert plugin(collector.url).upload(spool) is None
    assert spool.counts() == (12, 0) and spool.set_aside_list()[0] == 1
    assert collector.hashes_received()[0] == spool.records()[2].hash


def test_failures_keep_everything_and_a_resend_is_stored_once(
    spool: Spool, collector: CollectorState
) -> None:
    uploads = plugin(collector.url)
    collector.fail_next = 2
    changes = []  # a status message goes after each change: failing, and back to OK, are changes
    for _ in range(2):
        assert 0 < uploads.step(spool) <= 2
        changes.append(uploads.state.changes)
        assert spool.counts() == (12, 12) and "HTTP 500" in (spool.ship_status().last_error or "")
        assert logs_status(uploads) == {  # in the status message, as OPA's decision-log plug-in says it
            "code": "decision_log_error", "message": spool.ship_status().last_error, "http_code": 500,
        }  # fmt: skip
    collector.store_then_fail = 1  # stored, but the answer is lost: sent again
    uploads.step(spool)
    assert spool.counts() == (12, 12)
    uploads.step(spool)
    assert spool.counts() == (12, 0) and spool.ship_status().last_error is None
    assert logs_status(uploads) == {}
    assert [*changes, uploads.state.changes] == [1, 1, 2]  # (the two failures in a row: one change)
    assert len(collector.stored) == 12  # four tries, the same twelve events each time, oldest first
    assert collector.hashes_received() == [r.hash for r in spool.records()] * 4


def test_a_redirect_is_an_error_and_is_not_followed(spool: Spool, collector: CollectorState) -> None:
    collector.redirect = True
    error = plugin(collector.url).upload(spool)
    where = f"{collector.url}/elsewhere"
    assert error == f"{collector.url}/logs: HTTP 307 redirect to {where} (redirects are not followed)"
    assert len(collector.requests) == 1 and spool.counts() == (12, 12)


def test_an_unreachable_service_keeps_everything_pending(spool: Spool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uploads = plugin(f"http://127.0.0.1:{port}")
    assert uploads.upload(spool) == f"POST http://127.0.0.1:{port}/logs: connection refused"
    assert spool.counts() == (12, 12)
    uploads.step(spool)
    assert logs_status(uploads) == {  # no answer, no HTTP code
        "code": "decision_log_error", "message": f"POST http://127.0.0.1:{port}/logs: connection refused",
    }  # fmt: skip


def test_a_run_without_a_report_is_set_aside_at_once(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    token = tmp_path / "logs.token"
    token.write_text("s3cret-token\n")
    with run_collector(token="s3cret-token") as collector:
        config = config_file(device={"id": "laptop-17"})  # no ownership: the run fails before a report
        text = config.read_text() + (
            f'[services.logs]\nurl = "{collector.url}"\ncredentials.bearer.token_path = "{token}"\n'
            '[decision_logs]\nservice = "logs"\n'
        )
        config.write_text(text)
        assert run_pyagent("agent", "run", "--once", "--config", str(config)).returncode == 2
        done = run_pyagent(
            "agent",
            "run",
            "--once",
            "--config",
            str(config),
            "--ownership",
            "corporate",
            "--mdm-enrolled",
            "--org",
            "eu-commission",
        )
        assert done.returncode == 0, done.stderr
        assert len(collector.stored) == 1 and collector.requests[0].authorization == "Bearer s3cret-token"
        status = json.loads(
            run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout
        )
        assert status["pending"] == 0 and status["set_aside"]["count"] == 1
        assert status["set_aside"]["records"][0]["reason"].startswith(
            "no policy input to log: the run was invalid"
        )
        text_status = run_pyagent("agent", "status", "--config", str(config)).stderr
        assert "1 set aside" in text_status and "set aside: seq 1 at " in text_status


def test_the_gzip_body_is_a_json_array() -> None:
    assert json.loads(gzip.decompress(gzip_array([(1, b'{"a":1}'), (2, b'{"b":2}')]))) == [{"a": 1}, {"b": 2}]


def test_a_run_without_a_decision_is_an_event_with_opas_error_field(tmp_path: Path) -> None:
    """As OPA logs a failed evaluation: no ``result``, an ``error`` with a code and the message."""
    failed = {**decided(0), "outcome": "no-decision", "exit_code": 3, "decision": None,
              "error": "OPA at http://127.0.0.1:1: connection refused"}  # fmt: skip
    with Spool.open(tmp_path / "failed.sqlite", key=ChainKey()) as opened:
        opened.append(failed, max_records=10)
        [row] = opened.records()
    event = event_of(row, {"fleet": "t"})
    assert isinstance(event, dict) and "result" not in event
    message = "OPA at http://127.0.0.1:1: connection refused"
    assert event["error"] == {"code": "no_decision", "message": message}


def test_an_upload_that_fails_without_an_answer_drops_the_last_http_code(spool: Spool) -> None:
    """A 500, then an answer cut short: the second failure has no HTTP code of its own to report."""
    from tests.helpers.fault_server import Fault, fault_server

    failing = Fault(status=500, body=b'{"code": "internal", "message": "down"}')
    cut_short = Fault(status=200, body=b"{", declared_length=100)
    with fault_server(failing, cut_short) as url:
        uploads = plugin(url)
        uploads.step(spool)
        assert logs_status(uploads)["http_code"] == 500
        uploads.step(spool)
    shown = logs_status(uploads)
    assert shown["code"] == "decision_log_error" and "http_code" not in shown, shown
    assert spool.counts() == (12, 12)


def test_a_2xx_with_a_body_over_the_bound_takes_the_events(spool: Spool) -> None:
    """OPA reads a 2xx by its status alone: the events were taken. Its 100 KB body made the upload a
    failure, and every event went out again with each later batch (decision-log audit)."""
    from pyagent.agent.plugins.status import StatusPlugin
    from tests.helpers.fault_server import Fault, fault_server

    chatty = Fault(status=200, body=json.dumps({"note": "x" * 100_000}).encode())
    paths: list[str] = []
    with fault_server(chatty, paths=paths) as url:
        uploads = plugin(url)
        assert uploads.upload(spool) is None
        assert uploads.upload(spool) is None  # nothing left to send
        status = StatusPlugin(
            ServiceClient(Service("logs", url, timeout=2)), {}, lambda: "d-1", bundles=[], logs=None
        )
        status.step()
    assert (spool.counts(), paths) == ((12, 0), ["/logs", "/status"])
    assert (status.state.last_error, status.state.last_ok_at) == (None, status.state.last_attempt_at)


def test_an_event_whose_array_fits_the_limit_exactly_is_sent_not_set_aside() -> None:
    """Measured by the batching's estimate (a flush the sent array does not have), an event up to
    about 11 bytes under the limit was "over the limit even gzipped, alone" (decision-log audit)."""
    encoded = json.dumps(decided(0)).encode()  # (any JSON: the batching reads events as bytes)
    exact = len(gzip_array([(1, encoded)]))
    assert gzip_batches([(1, encoded)], exact) == ([[(1, encoded)]], [])
    assert gzip_batches([(1, encoded)], exact - 1) == ([], [1])
    assert gzip_batches([(1, encoded), (2, encoded)], exact) == ([[(1, encoded)], [(2, encoded)]], [])
