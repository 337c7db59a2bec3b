"""``bounded_http.Session``: connections kept open between requests (the ``opa`` engine's), with the
bounds of a one-shot request: a kept connection the server closed while idle is replaced without an
error (over TLS too), bytes a server sends between answers are never taken for an answer, an answer
that dribbles on a kept connection is still cut at the deadline, a connection is kept only after an
answer read to its end that did not ask to close it, a request the server may have processed is
not sent again, and resolving a name and connecting to its every address take one timeout in all."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyagent.bounded_http import MAX_ERROR_BODY, Session, Target, TransportError, request
from pyagent.bounded_http import session as session_module
from pyagent.decide import decide
from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from tests.helpers import domain
from tests.helpers.opa_server import RunningOpa
from tests.helpers.tls import make_pki

#: What the server does with one request it has read: answer it (True: keep the connection open for
#: the next request, False: close it afterwards).
Answer = Callable[[socket.socket], bool]


def answered(body: bytes = b'{"ok":true}', status: str = "200 OK", extra: str = "") -> Answer:
    def answer(conn: socket.socket) -> bool:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        conn.sendall(head.encode() + body)
        return True

    return answer


def answered_then_closed(conn: socket.socket) -> bool:
    """An answer that keeps the connection open, then the server's idle timeout closes it."""
    answered()(conn)
    return False


def answered_then_more(sent: threading.Event) -> Answer:
    """An answer, then shortly after a second one that no request asked for (``sent`` once it is)."""

    def answer(conn: socket.socket) -> bool:
        answered()(conn)
        time.sleep(0.05)  # after the client has read the answer: the bytes wait in its socket
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEARLY")
        sent.set()
        return True

    return answer


def closed_unanswered(conn: socket.socket) -> bool:
    """The request was read, and the connection closed without a byte of answer."""
    return False


def reset_unanswered(conn: socket.socket) -> bool:
    """The request was read (and perhaps processed), then the connection reset."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def late_closing_then_silent(conn: socket.socket) -> bool:
    """After 1.6 s, the head of an answer that says it closes the connection and a byte of its body; then
    nothing. The socket's timeout was set when the client began to wait (2 s then), so only the
    watchdog ends the body's read at the deadline."""
    time.sleep(1.6)
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 50\r\n\r\nx")
    time.sleep(5)
    return False


def dribbled_headers(conn: socket.socket) -> bool:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)
    return False


@dataclass
class ScriptedServer:
    target: Target
    connections: int = 0
    requests: list[int] = field(default_factory=list)
    """For each request read, the number of the connection it came on (1, 2, ...)."""
    closed: threading.Event = field(default_factory=threading.Event)
    """Set once the server has closed a connection."""


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(rest) < (lengths[0] if lengths else 0):
        chunk = conn.recv(65536)
        if not chunk:
            return False
        rest += chunk
    return True


@contextlib.contextmanager
def scripted_server(script: list[Answer], tls: ssl.SSLContext | None = None) -> Iterator[ScriptedServer]:
    """A keep-alive HTTP/1.1 server on a free loopback port (``tls``: its TLS context) answering the
    requests it reads with ``script``, in order, whatever connection they come on. For fault injection
    only: it never decides."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    client_tls = None
    if tls is not None:
        client_tls = ssl.create_default_context(cafile=str(Path(tls.ca_file)))  # type: ignore[attr-defined]
    state = ScriptedServer(Target("127.0.0.1", port, client_tls, origin))
    lock = threading.Lock()

    def serve(conn: socket.socket, number: int) -> None:
        with contextlib.ExitStack() as stack, contextlib.suppress(OSError):
            stack.callback(state.closed.set)  # (last: after the closes below)
            stack.callback(conn.close)
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
                stack.callback(conn.close)
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


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A TLS context for 127.0.0.1 from a throw-away CA (its file kept as ``ca_file`` for the client)."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.ca_file = str(pki.ca_cert)  # type: ignore[attr-defined]
    return context


def _post(session: Session, timeout: float = 5.0) -> bytes:
    reply = session.request("POST", "/v1/data/x", timeout=timeout, max_body=1024, headers={}, body=b"{}")
    return reply.body


def test_successive_requests_share_one_connection() -> None:
    with scripted_server([answered(b"1"), answered(b"2"), answered(b"3")]) as server:
        session = Session(server.target)
        assert [_post(session) for _ in range(3)] == [b"1", b"2", b"3"]
        session.close()
    assert (server.connections, server.requests) == (1, [1, 1, 1])


@pytest.mark.parametrize("over_tls", [False, True], ids=["http", "https"])
def test_a_kept_connection_the_server_closed_is_replaced_without_an_error(
    over_tls: bool, server_tls: ssl.SSLContext
) -> None:
    with scripted_server(
        [answered_then_closed, answered(b"again")], server_tls if over_tls else None
    ) as server:
        session = Session(server.target)
        _post(session)
        assert server.closed.wait(10)  # the server has closed the kept connection
        assert _post(session) == b"again"
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2])


def test_bytes_sent_between_answers_are_never_taken_for_an_answer() -> None:
    sent = threading.Event()
    with scripted_server([answered_then_more(sent), answered(b"second"), answered(b"third")]) as server:
        session = Session(server.target)
        _post(session)
        assert sent.wait(10)  # the unasked bytes are in the client's socket (loopback: at once)
        assert [_post(session), _post(session)] == [b"second", b"third"]
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2, 2])


def test_an_answer_that_asks_to_close_is_not_kept() -> None:
    with scripted_server([answered(b"1", extra="Connection: close\r\n"), answered(b"2")]) as server:
        session = Session(server.target)
        assert [_post(session), _post(session)] == [b"1", b"2"]
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2])


def test_a_connection_idle_too_long_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "MAX_IDLE_SECONDS", 0.1)
    with scripted_server([answered(b"1"), answered(b"2")]) as server:
        session = Session(server.target)
        _post(session)
        time.sleep(0.2)
        assert _post(session) == b"2"
        session.close()
    assert (server.connections, server.requests) == (2, [1, 2])


def test_a_kept_connection_closed_before_any_answer_is_asked_again_once() -> None:
    """The connection closed after the request without a byte of answer: sent again, on a new
    connection; the new connection's own failure is not retried."""
    with scripted_server([answered(b"1"), closed_unanswered, closed_unanswered]) as server:
        session = Session(server.target)
        _post(session)
        with pytest.raises(TransportError, match=r"^POST .*/v1/data/x: RemoteDisconnected: "):
            _post(session)
        session.close()
    assert (server.connections, server.requests) == (2, [1, 1, 2])


def test_a_request_the_server_may_have_processed_is_not_sent_again() -> None:
    """A reset once the request was read is not a connection closed while idle: no second request."""
    with scripted_server([answered(b"1"), reset_unanswered, answered(b"unasked")]) as server:
        session = Session(server.target)
        _post(session)
        with pytest.raises(TransportError, match=r"^POST .*/v1/data/x: ConnectionResetError: ") as raised:
            _post(session)
        assert raised.value.kind == "reset"  # the engine's own retries decide about it
        session.close()
    assert (server.connections, server.requests) == (1, [1, 1])


def test_an_answer_dribbled_on_a_kept_connection_is_cut_at_the_deadline() -> None:
    with scripted_server([answered(), dribbled_headers]) as server:
        session = Session(server.target)
        _post(session)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"^POST .*/v1/data/x: no complete answer within 1 s$"):
            _post(session, timeout=1)
        assert time.monotonic() - started < 3  # without the deadline: 10 s of dribbled head
        session.close()
    assert server.requests == [1, 1]


def test_an_answer_that_closes_the_connection_is_still_cut_at_the_deadline() -> None:
    """http.client lets go of the connection's socket while it reads such an answer: the deadline must
    hold all the same, in a session and in a one-shot request."""
    with scripted_server([late_closing_then_silent, late_closing_then_silent]) as server:
        session = Session(server.target)
        for ask in (
            lambda: _post(session, timeout=2),
            lambda: request(
                server.target, "POST", "/v1/data/x", timeout=2, max_body=1024, headers={}, body=b"{}"
            ),
        ):
            started = time.monotonic()
            with pytest.raises(TransportError, match=r"^POST .*/v1/data/x: no complete answer within 2 s$"):
                ask()
            assert time.monotonic() - started < 2.8  # without the held socket: about 3.6 s
        session.close()


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: a new connection's SYN goes unanswered, as it does
    to an address that drops packets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    queued = [socket.socket() for _ in range(4)]
    for sock in queued:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
    try:
        yield port
    finally:
        for sock in [*queued, server]:
            sock.close()


def test_connecting_to_every_address_of_a_name_is_bounded_by_one_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name with three addresses that never answer: the standard library gives each the whole
    timeout (3 s for a 1 s timeout); a session gives them 1 s in all."""
    with unanswered_port() as port:
        resolve = socket.getaddrinfo
        three = resolve("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM) * 3
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: three)
        target = Target("three.example", port, None, f"http://three.example:{port}")
        for ask in (
            lambda: _post(Session(target), timeout=1),
            lambda: request(target, "POST", "/v1/data/x", timeout=1, max_body=1024, headers={}, body=b"{}"),
        ):
            started = time.monotonic()
            with pytest.raises(
                TransportError, match=r"^POST .*/v1/data/x: no complete answer within 1 s$"
            ) as raised:
                ask()
            assert raised.value.kind == "timeout"
            assert time.monotonic() - started < 2.5  # without the shared bound: 3 s


def test_a_resolver_that_does_not_answer_is_given_up_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose resolver takes 4 s (a DNS server that drops queries): the request fails at its 1 s
    timeout, where the standard library would wait for the resolver."""
    with unanswered_port() as port:
        resolve = socket.getaddrinfo

        def slow(host: str, *args: object, **kwargs: object) -> object:
            if host == "slow.example":
                time.sleep(4)
            return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", slow)
        target = Target("slow.example", port, None, f"http://slow.example:{port}")
        started = time.monotonic()
        with pytest.raises(
            TransportError, match=r"^POST .*/v1/data/x: no complete answer within 1 s$"
        ) as raised:
            _post(Session(target), timeout=1)
        assert raised.value.kind == "timeout"
        assert time.monotonic() - started < 3  # without the bound: the resolver's 4 s


def test_a_session_used_after_close_leaves_no_thread_behind() -> None:
    with scripted_server([answered(b"1"), answered(b"2")]) as server:
        session = Session(server.target)
        _post(session)
        session.close()
        assert _post(session) == b"2"
        deadline = time.monotonic() + 2
        while session._watchdog._thread is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session._watchdog._thread is None
    assert (server.connections, server.requests) == (2, [1, 2])


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
    threads_before = set(threading.enumerate())  # the threads themselves: an ended one's ident is reused
    local_ports = set()
    try:
        for _ in range(50):
            decision = decide(engine, report, at="2023-03-16T09:30:00Z")
            verdict = decision["allow"], [v["rule"] for v in decision["violations"]], decision["errors"]
            assert verdict == (False, ["eu-commission/tiktok"], [])
            kept = engine._session._idle  # type: ignore[attr-defined]
            local_ports.update(conn.sock.getsockname()[1] for conn, _ in kept)
        assert len(local_ports) == 1
        added = [t.name for t in threading.enumerate() if t not in threads_before]
        assert added == ["pyagent-http-deadline"]
    finally:
        engine.close()
    watchdog = engine._session._watchdog  # type: ignore[attr-defined]
    deadline = time.monotonic() + 2
    while watchdog._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watchdog._thread is None


def test_a_refused_certificate_says_why(server_tls: ssl.SSLContext) -> None:
    """An expired certificate, another host's and an unknown CA all read "TLS failed:
    CERTIFICATE_VERIFY_FAILED"; the reason the certificate was refused is kept."""
    with scripted_server([answered(b"never")], server_tls) as server:
        untrusting = dataclasses.replace(server.target, context=ssl.create_default_context())  # no test CA
        session = Session(untrusting)
        with pytest.raises(TransportError) as refused:
            _post(session)
        session.close()
    assert str(refused.value).endswith(
        "TLS failed: CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    ), str(refused.value)
