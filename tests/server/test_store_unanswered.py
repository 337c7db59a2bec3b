"""A PostgreSQL that takes the connection and never answers (a hung host, a firewall that drops what
follows): the store says so within its connect timeout, where a connection attempt was held for as
long as the kernel kept it, and /health with it."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pyagent.server.store import StoreError, open_store
from pyagent.server.store import engine as store_engine


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
