"""One client opening connections and sending nothing: an attacker-side audit held 19,990 of them, up to
the server's file limit, and then neither a health check nor an agent got an answer. One peer address
may have MAX_PENDING_HEADS_PER_PEER connections waiting SLOW_HEAD_SECONDS or more for a request's head;
one more that waits as long is answered 503, while a prompt request from that address, and other
addresses (agents, a load balancer), are served as before."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyagent.server.protocol import MAX_PENDING_HEADS_PER_PEER, SLOW_HEAD_SECONDS
from tests.helpers.pyagent_server import run_server

ATTACKER, AGENT = "127.0.0.1", "127.0.0.2"  # (two addresses of the loopback network)


def _connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def _answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """The status and JSON body of the one answer on ``sock``, read until the server closes it."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _health(sock: socket.socket) -> tuple[int, dict[str, object]]:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: pyagent\r\nConnection: close\r\n\r\n")
    return _answer(sock)


@contextlib.contextmanager
def _silent(port: int, count: int) -> Iterator[list[socket.socket]]:
    held = [_connect(port, ATTACKER) for _ in range(count)]
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


@pytest.mark.timeout(60)
def test_one_address_cannot_hold_every_connection_waiting_for_a_request(tmp_path: Path) -> None:
    with (
        run_server(tmp_path, f"sqlite:///{tmp_path / 'server.db'}") as server,
        _silent(server.port, MAX_PENDING_HEADS_PER_PEER) as held,
    ):
        time.sleep(SLOW_HEAD_SECONDS + 0.5)  # every silent one counted by now
        prompt = _health(_connect(server.port, ATTACKER))  # a head at once: never refused
        started = time.monotonic()
        refused = _answer(_connect(server.port, ATTACKER))
        waited = time.monotonic() - started
        served = _health(_connect(server.port, AGENT))
        first = _health(held[0])  # a head sent: no longer waiting, a slot is free
        late = _connect(server.port, ATTACKER)
        time.sleep(SLOW_HEAD_SECONDS + 0.5)  # slow, and counted in the slot freed
        again = _health(late)
    message = f"{MAX_PENDING_HEADS_PER_PEER} connections from this address wait to send a request"
    assert refused == (503, {"code": "too_many_connections", "message": message})
    assert SLOW_HEAD_SECONDS - 0.1 < waited < SLOW_HEAD_SECONDS + 2, waited
    assert (prompt[0], served[0], first[0], again[0]) == (200, 200, 200, 200)
