"""A PostgreSQL that takes the connection and never answers (a hung host, a firewall that drops what
follows): the store says so within its connect timeout, where a connection attempt was held for as
long as the kernel kept it, and /health with it."""

from __future__ import annotations

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


def test_a_database_that_never_answers_is_an_error_within_the_connect_timeout(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_engine, "CONNECT_TIMEOUT_SECONDS", 2)
    store = open_store(f"postgresql+psycopg://pyagent@127.0.0.1:{silent_port}/pyagent", migrate=False)
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"^database postgresql\+psycopg://pyagent@127\.0\.0\.1:\d+/pyagent: "
    ):
        store.ping()
    assert time.monotonic() - started < 10
    store.close()
