"""The plug-ins' HTTP: a total deadline however slowly a server answers, bodies bounded while they arrive,
and no redirect followed."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyagent.agent.http import BodyTooLarge, ServiceClient, TransportError
from pyagent.config.opa import Service
from pyagent.errors import InvalidInputError


@contextlib.contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on a free port that reads the request line and lets ``answer`` write bytes."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def dribble(conn: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def chunked_forever(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(1000):
        conn.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")


def redirect(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/b\r\nContent-Length: 0\r\n\r\n")


def test_a_server_that_dribbles_its_headers_is_cut_at_the_deadline() -> None:
    with raw_server(dribble) as url:
        client = ServiceClient(Service("s", url))
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"^GET .*/b: no complete answer within 1 s$"):
            client.request("GET", "b", timeout=1, max_body=1024)
        assert time.monotonic() - started < 3  # without the deadline: 10 s of dribbled head


def test_a_body_without_a_length_is_refused_once_over_the_limit() -> None:
    with raw_server(chunked_forever) as url:
        sink = io.BytesIO()
        with pytest.raises(BodyTooLarge, match=r"the answer is over the limit of 100000 bytes; refused"):
            ServiceClient(Service("s", url)).request("GET", "b", timeout=5, max_body=100_000, sink=sink)
        assert len(sink.getvalue()) <= 100_000


def test_a_redirect_is_an_answer_not_followed() -> None:
    with raw_server(redirect) as url:
        reply = ServiceClient(Service("s", url)).request("GET", "b", timeout=5, max_body=1024)
        assert reply.status == 302
        assert (
            reply.message() == "HTTP 302 redirect to http://elsewhere.invalid/b (redirects are not followed)"
        )


def silent(conn: socket.socket) -> None:
    time.sleep(10)


def slow_body(closing: bool) -> Callable[[socket.socket], None]:
    """The head at once (``closing``: saying the connection closes after it, as an HTTP/1.0 server
    such as Python's http.server does), then half the body, nothing for 1.5 s, the other half."""

    def answer(conn: socket.socket) -> None:
        close = b"Connection: close\r\n" if closing else b""
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n" + close + b"\r\n" + b"x" * 10)
        time.sleep(1.5)
        conn.sendall(b"x" * 10)

    return answer


@pytest.mark.parametrize(("long_poll", "bound"), [(None, 1), (2, 3)])
def test_the_answer_s_head_is_awaited_for_the_service_s_header_timeout_only(
    long_poll: int | None, bound: int
) -> None:
    """response_header_timeout_seconds (plus a long poll's wait), as OPA: a service that never answers
    was waited on for the whole download's deadline (62 s with a 1 s header timeout)."""
    with raw_server(silent) as url:
        client = ServiceClient(Service("s", url, timeout=1))
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"^GET .*/b: no complete answer within {bound} s$"):
            client.request("GET", "b", timeout=60, max_body=1024, long_poll=long_poll)
        assert time.monotonic() - started < bound + 3  # not the 60 s of the whole request


@pytest.mark.parametrize("closing", [False, True], ids=["kept", "closing"])
def test_a_body_slower_than_the_header_timeout_is_read_whole(closing: bool) -> None:
    """The closing answer's socket kept the header timeout (http.client lets go of it): cut at 1 s."""
    with raw_server(slow_body(closing)) as url:
        reply = ServiceClient(Service("s", url, timeout=1)).request("GET", "b", timeout=30, max_body=1024)
    assert (reply.status, reply.body) == (200, b"x" * 20)


def test_a_bundle_download_deadline_grows_with_its_size_limit() -> None:
    """response_header_timeout_seconds bounds the wait for the answer (OPA's meaning), not the body."""
    from pyagent.agent.plugins.bundle import MIN_DOWNLOAD_RATE, download_deadline

    assert download_deadline(10, None, 1024) == 70  # small bundles: a minute for the body at least
    assert download_deadline(10, 30, 64 * 1024 * 1024) == 10 + 30 + 64 * 1024 * 1024 / MIN_DOWNLOAD_RATE


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("abc\x01def", "must be visible ASCII (it is sent in an HTTP header)"),
        ("jeton-é", "must be visible ASCII (it is sent in an HTTP header)"),
        ("two words", "must be visible ASCII (it is sent in an HTTP header)"),
    ],
)
def test_a_token_no_header_can_carry_is_refused_before_anything_is_sent(
    tmp_path: Path, token: str, problem: str
) -> None:
    """Sent, a server answers 400, which the decision-log upload would take for a refused event."""
    asked: list[bytes] = []

    def record(conn: socket.socket) -> None:
        asked.append(b"asked")
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    path = tmp_path / "token"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    with raw_server(record) as url:
        client = ServiceClient(Service("s", url, token_path=path))
        with pytest.raises(InvalidInputError) as refused:
            client.request("GET", "b", timeout=5, max_body=1024)
    assert (str(refused.value), asked) == (f"{path}: token of service s {problem}", [])


@pytest.mark.parametrize(
    ("url", "resource"),
    [("http://plane:8282", "/status"), ("https://plane/base/", "/status/eu"),
     ("http://plane/api?x=1", "logs/"), ("http://plane:80/collect", "")],
)  # fmt: skip
def test_agent_status_names_a_service_as_its_client_does(url: str, resource: str) -> None:
    """``agent status`` finds the status plug-in's kept outcome by the URL the plug-in named: its own
    string formula differed from the client's (a query string, a trailing slash)."""
    from pyagent.agent.http import resource_url
    from pyagent.config.opa import Service

    assert resource_url(url, resource) == ServiceClient(Service("s", url)).url(resource)


@pytest.mark.parametrize(
    ("head", "told"),
    [
        (b"Content-Length: 20\r\nContent-Length: 10\r\n", "Content-Length '20', '10'"),
        (b"Content-Length: -5\r\n", "Content-Length '-5'"),
        (
            b"Content-Length: 20\r\nTransfer-Encoding: chunked\r\n",
            "Content-Length '20' and a Transfer-Encoding",
        ),
    ],
    ids=["two-lengths", "negative", "length-and-chunked"],
)
def test_an_answer_whose_length_is_ambiguous_is_refused(head: bytes, told: str) -> None:
    """Two readers could take different bodies from such an answer (the first length was read): it
    is refused, whatever its body verifies as later."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + b"x" * 20)

    with raw_server(answer) as url, pytest.raises(TransportError) as info:
        ServiceClient(Service("s", url)).request("GET", "b", timeout=5, max_body=1024, sink=io.BytesIO())
    assert info.value.detail == f"the answer's length is ambiguous ({told}); refused"
