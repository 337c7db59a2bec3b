"""Real processes: the server killed with SIGKILL while clients upload keeps every acknowledged event
and no half batch; two replicas on one PostgreSQL behind nginx serve one fleet, a publish through one
wakes long polls held by the other, and one replica killed costs no acknowledged event."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pyagent.server.store import open_store
from pyagent.server.store.schema import decisions
from pyagent.server.store.sql import SqlStore
from tests.helpers.nginx import RunningNginx, run_nginx
from tests.helpers.opa_server import free_port
from tests.helpers.postgres import RunningPostgres
from tests.helpers.pyagent_server import add_token, run_server
from tests.server.conftest import fresh_db_url
from tests.server.uploader import Uploader


def stored_ids(db: str) -> set[str]:
    store = open_store(db)
    assert isinstance(store, SqlStore)
    try:
        with store.engine.connect() as conn:
            return set(conn.execute(select(decisions.c.decision_id)).scalars())
    finally:
        store.close()


def check_batches(uploader: Uploader, stored: set[str]) -> None:
    """Every acknowledged event is stored; every batch is stored whole or not at all."""
    acknowledged = {d for batch in uploader.acknowledged for d in batch}
    assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged events"
    for batch in uploader.attempted:
        present = sum(d in stored for d in batch)
        assert present in (0, len(batch)), f"half a batch stored: {present} of {len(batch)}"


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sigkill_while_uploading_loses_no_acknowledged_event(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = fresh_db_url(kind, tmp_path, request)
    token = add_token(db, "agents", "agent")
    port = free_port()
    for round_number in range(3):
        with run_server(tmp_path, db, port=port) as server:
            uploaders = [Uploader(server.url, token, f"r{round_number}c{c}") for c in range(2)]
            threads = [u.start() for u in uploaders]
            wait_for(lambda group=uploaders: all(len(u.acknowledged) >= 3 for u in group))
            server.kill()
            for u in uploaders:
                u.stop.set()
            for t in threads:
                t.join(timeout=20)
        stored = stored_ids(db)
        for u in uploaders:
            check_batches(u, stored)
            assert len(u.acknowledged) >= 3


def _get(
    url: str, path: str, headers: dict[str, str], timeout: float = 40
) -> tuple[int, dict[str, str], bytes]:
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _publish(db: str, revision: str) -> None:
    from pyagent.server.store.base import BundleFile, NewRevision

    store = open_store(db)
    try:
        store.publish(
            NewRevision(
                "pyagent",
                revision,
                None,
                False,
                "test",
                [BundleFile("rego", f'"{revision}"', revision.encode())],
            )
        )
    finally:
        store.close()


def wait_for_log(balancer: RunningNginx, count: int) -> list[str]:
    """nginx writes a request's log line after its answer: wait until ``count`` are there."""
    deadline = time.monotonic() + 5
    while len(used := balancer.upstreams_used()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return used


def test_replicas_behind_nginx_share_one_fleet(tmp_path: Path, postgres: RunningPostgres) -> None:
    db = postgres.create_database("replicas")
    token = add_token(db, "agents", "agent")
    _publish(db, "r1")
    with (
        run_server(tmp_path, db) as first,
        run_server(tmp_path, db) as second,
        run_nginx(tmp_path, upstreams=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]) as balancer,
    ):
        auth = {"Authorization": f"Bearer {token}"}
        # round robin: both replicas answer the same bundle
        answers = [_get(balancer.url, "/bundles/pyagent", auth) for _ in range(4)]
        assert {(status, body) for status, _, body in answers} == {(200, b"r1")}
        replicas = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
        assert sorted(wait_for_log(balancer, 4)) == sorted(replicas * 2)  # two each
        # a long poll held by the first replica is woken by a publish that the second never sees
        result: dict[str, Any] = {}

        def hold() -> None:
            result["answer"] = _get(
                first.url, "/bundles/pyagent", {**auth, "If-None-Match": '"r1"', "Prefer": "wait=30"}
            )
            result["at"] = time.monotonic()

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(1.0)
        _publish(db, "r2")  # another process's transaction: reaches the replicas by NOTIFY only
        published = time.monotonic()  # (after the publish's own store setup and commit)
        holder.join(timeout=35)
        status, headers, body = result["answer"]
        assert (status, body, headers["etag"]) == (200, b"r2", '"r2"')
        assert result["at"] - published < 5.0  # woken by the NOTIFY, not by the 30 s recheck

        # one replica killed while clients upload through nginx: every acknowledged event is stored
        uploader = Uploader(balancer.url, token, "lb")
        thread = uploader.start()
        wait_for(lambda: len(uploader.acknowledged) >= 4)
        second.kill()
        acknowledged_at_kill = len(uploader.acknowledged)
        wait_for(lambda: len(uploader.acknowledged) >= acknowledged_at_kill + 6)
        uploader.stop.set()
        thread.join(timeout=20)
    check_batches(uploader, stored_ids(db))
    assert len(uploader.acknowledged) >= acknowledged_at_kill + 6
