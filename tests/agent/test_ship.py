"""Shipping to a collector: at least once, idempotent by the record id, marked shipped only after 2xx."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyagent.agent.chain import ChainKey
from pyagent.agent.ship import Collector, ship_pending
from pyagent.agent.store import Spool
from tests.agent.collector import CollectorState, run_collector
from tests.agent.conftest import fill, run_pyagent


@pytest.fixture
def collector() -> Iterator[CollectorState]:
    with run_collector() as state:
        yield state


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    path = tmp_path / "spool.sqlite"
    fill(path, 6, max_records=4)  # two dropped before anything was shipped
    with Spool.open(path, key=ChainKey()) as opened:
        yield opened


def test_every_record_is_shipped_once_with_its_id_as_idempotency_key(
    spool: Spool, collector: CollectorState
) -> None:
    result = ship_pending(spool, Collector(collector.url))
    assert (result.sent, result.pending, result.error) == (4, 0, None)
    ids = [r.id for r in spool.records()]
    assert collector.keys_received() == ids  # oldest first, one request each
    assert list(collector.stored) == ids
    state = spool.state()
    for received in collector.requests:
        body = received.body
        assert body["id"] == received.key and body["record"]["id"] == received.key
        assert body["chain"]["head"] == {"seq": 6, "hash": state.head_hash, "id": state.head_id}
        assert (body["chain"]["dropped"], body["chain"]["dropped_unshipped"]) == (2, 2)
        assert ChainKey().digest(body["record"]) == body["hash"]  # the collector can check each record
    assert ship_pending(spool, Collector(collector.url)).sent == 0  # nothing left: nothing re-sent
    assert len(collector.requests) == 4


def test_a_failing_collector_gets_the_same_keys_again_and_stores_no_duplicates(
    spool: Spool, collector: CollectorState
) -> None:
    ids = [r.id for r in spool.records()]
    collector.fail_next = 3
    first = ship_pending(spool, Collector(collector.url))
    assert first.sent == 0 and first.pending == 4 and "HTTP 500" in (first.error or "")
    assert spool.ship_status().last_error == first.error
    for _ in range(2):
        assert ship_pending(spool, Collector(collector.url)).error is not None
    collector.store_then_fail = 1  # stored, but the answer is lost: the agent must send it again
    assert ship_pending(spool, Collector(collector.url)).error is not None
    recovered = ship_pending(spool, Collector(collector.url))
    assert (recovered.sent, recovered.pending, recovered.error) == (4, 0, None)
    assert collector.keys_received() == [ids[0]] * 4 + ids  # ids[0]: 3 x 500, 1 lost answer, then ok
    assert list(collector.stored) == ids  # and stored once
    assert spool.ship_status().last_error is None


def test_a_redirect_is_not_success(spool: Spool, collector: CollectorState) -> None:
    collector.redirect = True
    result = ship_pending(spool, Collector(collector.url))
    assert result.sent == 0 and "HTTP 307" in (result.error or "")
    assert len(collector.requests) == 1 and not collector.stored


def test_an_unreachable_collector_keeps_everything_pending(spool: Spool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = ship_pending(spool, Collector(f"http://127.0.0.1:{port}/v1/results", timeout=2))
    assert result.sent == 0 and result.pending == 4 and "cannot reach the collector" in (result.error or "")


def test_the_agent_ships_with_a_bearer_token(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    token = tmp_path / "collector.token"
    token.write_text("s3cret-token\n")
    with run_collector(token="s3cret-token") as collector:
        config = config_file(collector_url=collector.url, collector_token_file=str(token))
        done = run_pyagent("agent", "run", "--once", "--config", str(config))
        assert done.returncode in (0, 1), done.stderr
        recorded = json.loads(done.stdout)
        assert list(collector.stored) == [recorded["id"]]
        assert collector.requests[0].authorization == "Bearer s3cret-token"
        status = json.loads(
            run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout
        )
        assert status["pending"] == 0 and status["shipping"]["last_error"] is None


def test_the_agent_keeps_results_while_the_collector_fails_and_ships_them_later(
    tmp_path: Path, config_file: Callable[..., Path], policy_bundle: Path
) -> None:
    with run_collector() as collector:
        config = config_file(collector_url=collector.url)
        collector.fail_next = 10
        ids = []
        for _ in range(2):
            done = run_pyagent("agent", "run", "--once", "--config", str(config))
            assert done.returncode in (0, 1), done.stderr  # a failing collector does not fail the run
            assert "HTTP 500" in done.stderr
            ids.append(json.loads(done.stdout)["id"])
        assert not collector.stored
        status = json.loads(
            run_pyagent("agent", "status", "--config", str(config), "--format", "json").stdout
        )
        assert status["pending"] == 2 and "HTTP 500" in status["shipping"]["last_error"]
        collector.fail_next = 0
        done = run_pyagent("agent", "run", "--once", "--config", str(config))
        ids.append(json.loads(done.stdout)["id"])
        assert list(collector.stored) == ids
        assert set(collector.keys_received()) == set(ids)
