"""A PostgreSQL that takes the connection and never answers (a hung host, a firewall that drops what
follows): the store says so within its connect timeout, where a connection attempt was held for as
long as the kernel kept it, and /health with it; and a real PostgreSQL that stops answering on the
connections already pooled (its processes stopped, the host still there): /health says 503 within
its own limit, where it waited for good, and 200 once the database answers again."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pyagent.server import app as server_app
from pyagent.server import context as server_context
from pyagent.server.settings import ServerSettings
from pyagent.server.store import StoreError, open_store
from pyagent.server.store import engine as store_engine
from tests.helpers.postgres import run_postgres


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def _ping_outcome(url: str) -> tuple[BaseException | None, float]:
    """What ``ping`` of a store at ``url`` raised, and after how long; fails the test past 15 s
    (without a timeout it never came back)."""
    store = open_store(url, migrate=False)
    outcome: list[BaseException | None] = []

    def ping() -> None:
        try:
            store.ping()
        except BaseException as err:  # the outcome, for the assertion
            outcome.append(err)
        else:
            outcome.append(None)

    pinger = threading.Thread(target=ping, daemon=True)
    started = time.monotonic()
    pinger.start()
    pinger.join(15)
    assert outcome, "the ping was still waiting after 15 s"
    store.close()
    return outcome[0], time.monotonic() - started


def test_a_database_that_never_answers_is_an_error_within_the_connect_timeout(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "CONNECT_TIMEOUT_SECONDS", 2)
    error, took = _ping_outcome(f"postgresql+psycopg://pyagent@127.0.0.1:{silent_port}/pyagent")
    assert isinstance(error, StoreError) and took < 10
    assert re.match(r"database postgresql\+psycopg://pyagent@127\.0\.0\.1:\d+/pyagent: ", str(error))


def test_a_url_s_own_connect_timeout_stands(silent_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_engine, "CONNECT_TIMEOUT_SECONDS", 600)
    url = f"postgresql+psycopg://pyagent@127.0.0.1:{silent_port}/pyagent?connect_timeout=2"
    error, took = _ping_outcome(url)
    assert isinstance(error, StoreError) and took < 10


def _cluster_pids(data_dir: Path) -> list[int]:
    """The cluster's server process and every process it started."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # (a process that ended meanwhile)
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


@pytest.mark.timeout(120)
def test_a_database_that_stops_answering_on_a_pooled_connection_is_a_503_from_health(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_app, "HEALTH_TIMEOUT_SECONDS", 2.0)
    with run_postgres(tmp_path) as running:
        store = open_store(running.url)
        try:
            with TestClient(server_app.create_app(ServerSettings(), store)) as client:
                assert client.get("/health").json() == {"status": "ok"}  # a connection in the pool now
                stopped = _cluster_pids(running.data_dir)
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    answer = client.get("/health")
                    took = time.monotonic() - started
                finally:
                    for pid in stopped:
                        os.kill(pid, signal.SIGCONT)
                assert (answer.status_code, answer.json()) == (
                    503, {"status": "unavailable", "message": "the database is not available"}
                )  # fmt: skip
                assert 2.0 <= took < 10, took
                assert client.get("/health").json() == {"status": "ok"}
        finally:
            store.close()


@pytest.mark.timeout(120)
def test_a_database_that_stops_answering_is_a_503_to_agents_and_opas_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/health said 503 in 5 s, while an upload, a status message and a bundle download through the same
    stopped database got no byte for as long as the client waited (replicas audit: 150 s)."""
    monkeypatch.setattr(server_context, "STORE_CALL_SECONDS", 2.0)
    bearer = {"Authorization": "Bearer any-token"}
    with run_postgres(tmp_path) as running:
        store = open_store(running.url)
        try:
            with TestClient(server_app.create_app(ServerSettings(), store)) as client:
                assert client.get("/bundles/pyagent", headers=bearer).status_code == 401  # pooled now
                stopped = _cluster_pids(running.data_dir)
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
                try:
                    answers = []
                    for method, path in (("POST", "/logs"), ("POST", "/status"), ("GET", "/bundles/pyagent")):
                        started = time.monotonic()
                        answer = client.request(method, path, headers=bearer, content=b"[]")
                        answers.append((path, answer.status_code, answer.json(), time.monotonic() - started))
                finally:
                    for pid in stopped:
                        os.kill(pid, signal.SIGCONT)
                unavailable = {"code": "unavailable", "message": "the database is not available"}
                for path, status, body, took in answers:
                    assert (path, status, body) == (path, 503, unavailable)
                    assert 2.0 <= took < 10, (path, took)
                assert client.get("/bundles/pyagent", headers=bearer).status_code == 401  # answering again
        finally:
            store.close()


def test_pooled_connections_are_probed_and_bounded_unless_the_url_says_otherwise(tmp_path: Path) -> None:
    """TCP keepalives and ``tcp_user_timeout`` on every connection: one whose packets go unanswered
    (a host gone, a firewall dropping them) ends in about 30 s rather than the kernel's ~15 minutes."""
    with run_postgres(tmp_path) as running:
        for url, idle in ((running.url, "30"), (f"{running.url}?keepalives_idle=5", "5")):
            engine = store_engine.open_engine(url)
            try:
                with engine.connect() as conn:
                    given = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            finally:
                engine.dispose()
            assert {key: given.get(key) for key in ("keepalives", "keepalives_idle", "keepalives_interval",
                    "keepalives_count", "tcp_user_timeout", "connect_timeout")} == {
                "keepalives": "1", "keepalives_idle": idle, "keepalives_interval": "10",
                "keepalives_count": "3", "tcp_user_timeout": "30000", "connect_timeout": "5",
            }  # fmt: skip
