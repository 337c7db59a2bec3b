"""``bounded_http.Session``: connections kept open between requests (the ``opa`` engine's), with the
bounds of a one-shot request: a kept connection the server closed while idle is replaced without an
error, an answer that dribbles on a kept connection is still cut at the deadline, and a connection is
kept only after an answer read to its end."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pyagent.bounded_http import MAX_ERROR_BODY, Session, Target, TransportError
from pyagent.decide import decide
from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from tests.helpers import domain
from tests.helpers.opa_server import RunningOpa

#: What the server does with one request on a connection: answer it (True: keep the connection open
#: for the next request, False: close it after the answer).
Answer = Callable[[socket.socket], bool]


def answered(body: bytes = b'{"ok":true}', status: str = "200 OK") -> Answer:
    def answer(conn: socket.socket) -> bool:
        head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body)
        return True

    return answer


def answered_then_closed(conn: socket.socket) -> bool:
    """An answer that keeps the connection open, then the server's idle timeout closes it."""
    answered()(conn)
    return False


def dribbled_headers(conn: socket.socket) -> bool:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)
    return False


@dataclass
class ScriptedServer:
    url: str
    target: Target
    connections: int = 0
    requests: list[int] = field(default_factory=list)
    """For each request answered, the number of the connection it came on (1, 2, ...)."""


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        rest += chunk
    return True


@contextlib.contextmanager
def scripted_server(script: list[Answer]) -> Iterator[ScriptedServer]:
    """A keep-alive HTTP/1.1 server on a free loopback port answering requests with ``script`` in order,
    whatever connection they come on (fault injection only: it never decides)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    state = ScriptedServer(
        f"http://127.0.0.1:{port}", Target("127.0.0.1", port, None, f"http://127.0.0.1:{port}")
    )
    lock = threading.Lock()

    def serve(conn: socket.socket, number: int) -> None:
        with conn, contextlib.suppress(OSError):
            while _read_request(conn):
                with lock:
                    if not script:
                        return
                    answer = script.pop(0)
                    state.requests.append(number)
                if not answer(conn):
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with lock:
                state.connections += 1
                number = state.connections
            threading.Thread(target=serve, args=(conn, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield state
    finally:
        listener.close()


def _post(session: Session, timeout: float = 5.0) -> bytes:
    reply = session.request("POST", "/v1/data/x", timeout=timeout, max_body=1024, headers={}, body=b"{}")
    return reply.body


def test_successive_requests_share_one_connection() -> None:
    with scripted_server([answered(b"1"), answered(b"2"), answered(b"3")]) as server:
        session = Session(server.target)
        assert [_post(session) for _ in range(3)] == [b"1", b"2", b"3"]
        session.close()
    assert (server.connections, server.requests) == (1, [1, 1, 1])


def test_a_kept_connection_the_server_closed_is_replaced_without_an_error() -> None:
    with scripted_server([answered_then_closed, answered(b"again")]) as server:
        session = Session(server.target)
        _post(session)
        time.sleep(0.2)  # the server has closed the kept connection by now
        assert _post(session) == b"again"
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2])


def test_an_answer_dribbled_on_a_kept_connection_is_cut_at_the_deadline() -> None:
    with scripted_server([answered(), dribbled_headers]) as server:
        session = Session(server.target)
        _post(session)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"^POST .*/v1/data/x: no complete answer within 1 s$"):
            _post(session, timeout=1)
        assert time.monotonic() - started < 2
        session.close()
    assert server.requests == [1, 1]


def test_a_connection_is_not_kept_after_an_answer_left_unread() -> None:
    """Of a 1 MiB error body, the client reads what arrives first and keeps 16 KiB for the message; the
    rest is never read, so the connection is closed, and the next request goes on a new one."""
    long_error = answered(b"x" * (1 << 20), status="500 Internal Server Error")
    with scripted_server([long_error, answered(b"next")]) as server:
        session = Session(server.target)
        reply = session.request("POST", "/v1/data/x", timeout=5, max_body=1024, headers={}, body=b"{}")
        assert (reply.status, len(reply.body)) == (500, MAX_ERROR_BODY)
        assert _post(session) == b"next"
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2])


def test_the_opa_engine_decides_over_one_connection_and_one_watchdog_thread(opa_server: RunningOpa) -> None:
    """Fifty decisions from a real OPA: the same client socket throughout, and no thread per request."""
    report = domain.make_report("eu-commission", "android", "corporate", True, ["com.zhiliaoapp.musically"])
    engine = build_engine(EngineSettings(engine="opa", opa_url=opa_server.url))
    threads_before = threading.active_count()
    local_ports = set()
    try:
        for _ in range(50):
            decision = decide(engine, report, at="2023-03-16T09:30:00Z")
            assert decision["allow"] is False
            kept = engine._session._idle  # type: ignore[attr-defined]
            local_ports.update(conn.sock.getsockname()[1] for conn in kept)
        assert len(local_ports) == 1
        assert threading.active_count() == threads_before + 1  # the session's watchdog
    finally:
        engine.close()
    deadline = time.monotonic() + 2
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads_before
