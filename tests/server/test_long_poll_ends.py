"""How a held long poll ends besides a publish or its wait: its token revoked meanwhile (401, never
the new bundle), and the server process shutting down (304 at once, so that the client asks again,
another replica behind a load balancer, where it was cut off with a 500 after the grace period)."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pyagent.server.store.base import BundleFile, NewRevision
from tests.helpers.pyagent_server import add_token, run_server
from tests.server.inprocess import Fleet, held_after_first_read


def test_a_token_revoked_while_its_poll_is_held_gets_no_bundle(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=30"}
    answer: dict[str, Any] = {}
    held = held_after_first_read(fleet, monkeypatch)  # once read, with its token valid: held

    def poll() -> None:
        response = fleet.client.get("/bundles/pyagent", headers=headers)
        answer.update(status=response.status_code, body=response.content)

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert held.wait(10)
    assert fleet.store.revoke_token("agent-token") is True
    fleet.store.publish(
        NewRevision("pyagent", "r2", None, False, "t", [BundleFile("rego", '"etag-r2"', b"r2")])
    )
    waiter.join(timeout=20)
    assert answer["status"] == 401 and b"r2" not in answer["body"]


def test_a_token_revoked_while_its_poll_is_held_gets_401_when_the_wait_ends(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing published meanwhile: the wait's end said 304, as to a valid token."""
    headers = {**fleet.auth("agent"), "If-None-Match": '"etag-r1"', "Prefer": "wait=2"}
    answer: dict[str, Any] = {}
    held = held_after_first_read(fleet, monkeypatch)

    def poll() -> None:
        answer["status"] = fleet.client.get("/bundles/pyagent", headers=headers).status_code

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert held.wait(10)
    assert fleet.store.revoke_token("agent-token") is True
    waiter.join(timeout=20)
    assert answer == {"status": 401}


def test_a_shutting_down_server_answers_its_held_polls_with_304_at_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'server.db'}"
    token = add_token(db, "agents", "agent")
    with run_server(tmp_path, db) as server:
        published = _publish(db)
        answers: list[tuple[int, float, str | None]] = []

        def poll() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            headers = {"Authorization": f"Bearer {token}", "If-None-Match": published, "Prefer": "wait=25"}
            connection.request("GET", "/bundles/pyagent", headers=headers)
            started = time.monotonic()
            response = connection.getresponse()
            answers.append((response.status, time.monotonic() - started, response.getheader("connection")))

        waiters = [threading.Thread(target=poll) for _ in range(2)]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 20
        while _requests_read(server.port) < 2:  # both connected, and both requests read by the server
            assert time.monotonic() < deadline, "the two polls never reached the server"
            time.sleep(0.05)
        time.sleep(0.5)  # from read to held: the token's check, one store read
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for waiter in waiters:
            waiter.join(timeout=30)
        assert server.process.wait(timeout=15) in (0, -signal.SIGTERM)  # (uvicorn raises it again when done)
        stopped = time.monotonic() - signalled
    assert [(status, connection) for status, _, connection in answers] == [(304, "close"), (304, "close")]
    assert stopped < 3.0  # not the 5 s grace period, then a cancelled request


def _publish(db: str) -> str:
    """A revision of bundle ``pyagent`` in the store; its rego build's ETag."""
    from pyagent.server.store import open_store

    store = open_store(db)
    try:
        store.publish(
            NewRevision("pyagent", "r1", None, False, "t", [BundleFile("rego", '"etag-r1"', b"r1")])
        )
    finally:
        store.close()
    return '"etag-r1"'


def _requests_read(port: int) -> int:
    """The server's established connections on ``port`` whose received bytes it has all read (Linux's
    /proc/net/tcp: local address, state 01, rx_queue 0)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, received = fields[1], fields[3], fields[4].split(":")[1]
        count += int(local.split(":")[1], 16) == port and state == "01" and int(received, 16) == 0
    return count
