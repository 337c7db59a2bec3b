"""Issue 16, item 2 (the server's receivers): every body sent to ``pyagent server run`` is bounded in
size and in time.

A real server process, spoken to over raw sockets as an attacker would: decision logs (``POST /logs``),
status (``POST /status``) and bundle uploads (``PUT /api/v1/bundles/NAME``, multipart files spooled to
disk) all refuse

- a body dripped a byte at a time, or shorter than its Content-Length: 408 at the body deadline
  (``body_timeout_seconds``, 1 s here), and the connection is closed;
- a declared Content-Length over the limit: 413 before a byte of the body is read;
- an undeclared (chunked) body over the limit: 413 as soon as the limit is passed, while it streams;
- a request line and headers over 64 KiB (one long value, or many small headers, sent before any
  token is checked): 431 as soon as the bound is passed;
- a gzip bomb: 413 once the decoded budget is passed (a bundle bomb uploaded: 400 at the bundle
  reader's budget), with the server's peak RSS (from /proc) bounded.

Every refusal is the server's JSON error with its exact message, and closes the connection (the rest
of the body is not read as a next request).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyagent.server.protocol import MAX_HEAD_BYTES
from tests.attack.tar_bombs import bomb
from tests.helpers.pyagent_server import RunningServer, add_token, run_server

MiB = 1024 * 1024
DEADLINE = 1
#: The server's defaults: bytes on the wire, after gzip; two bundles of 64 MiB and their framing.
MAX_BODY, MAX_DECODED = 32 * MiB, 64 * MiB
#: Generous: measured 142 MB at most (78 MB at start) after each of these bodies.
SERVER_RSS_BOUND = 256 * MiB
BOUNDARY = "pyagent-attack"


@dataclass(frozen=True)
class Target:
    server: RunningServer
    agent: str
    admin: str

    def head(self, receiver: str, length: int | None, *headers: str) -> bytes:
        """The request line and headers for ``receiver`` ("/logs", "/status", "upload", or the
        dashboard's "/login"), with a Content-Length, or chunked when ``length`` is None."""
        upload = receiver == "upload"
        media = {
            "upload": f"multipart/form-data; boundary={BOUNDARY}",
            "/login": "application/x-www-form-urlencoded",
        }.get(receiver, "application/json")
        lines = [
            "PUT /api/v1/bundles/pyagent HTTP/1.1" if upload else f"POST {receiver} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Authorization: Bearer {self.admin if upload else self.agent}",
            f"Content-Type: {media}",
            f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked",
            *headers,
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def peak_rss(self) -> int:
        """The server process's peak resident set, in bytes (VmHWM)."""
        for line in Path(f"/proc/{self.server.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    """From the connection to the answer's first byte."""
    sent: int
    """Bytes of the body the client could send before the answer."""
    closed: bool
    """The server closed the connection after answering."""
    headers: dict[str, str]
    body: bytes

    def error(self) -> tuple[int, dict[str, str], str]:
        return self.status, json.loads(self.body), self.headers.get("connection", "")


def exchange(port: int, head: bytes, parts: Iterable[bytes], gap: float = 0.0) -> Answer:
    """Sends ``head``, then ``parts`` ``gap`` seconds apart until the server answers; reads the answer."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(15)
    sent = 0
    with sock:
        sock.sendall(head)
        for part in parts:
            if select.select([sock], [], [], gap)[0]:
                break  # the server answered, or closed
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(part)
        data = _head(sock)
        seconds = time.monotonic() - started
        top, _, body = data.partition(b"\r\n\r\n")
        status_line, *lines = top.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        while len(body) < int(headers["content-length"]):
            body += _recv(sock)
        sock.settimeout(2)
        try:
            closed = _recv(sock) == b""
        except TimeoutError:
            closed = False
    return Answer(int(status_line.split()[1]), seconds, sent, closed, headers, body)


def _head(sock: socket.socket) -> bytes:
    """What the server sent up to the end of its answer's head (some of the body may follow it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    return data


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield b"%x\r\n%s\r\n" % (len(part), part)


def upload_parts(size: int) -> Iterator[bytes]:
    """A multipart body whose one file part is ``size`` bytes, in pieces of 1 MiB."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="wasm"; filename="bundle.tar.gz"\r\n'
        "Content-Type: application/gzip\r\n\r\n"
    ).encode()
    piece = b"\0" * MiB
    for _ in range(size // MiB):
        yield piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    work = tmp_path_factory.mktemp("receivers")
    db = f"sqlite:///{work / 'server.db'}"
    agent, admin = add_token(db, "agents", "agent"), add_token(db, "admins", "admin")
    config = work / "server.toml"
    config.write_text(f"[server]\nbody_timeout_seconds = {DEADLINE}\n", encoding="utf-8")
    with run_server(work, db, extra_args=["--config", str(config)]) as server:
        yield Target(server, agent, admin)


TIMEOUT = (
    408,
    {"code": "request_timeout", "message": f"body not received within {DEADLINE} seconds"},
    "close",
)


@pytest.mark.parametrize("receiver", ["/logs", "/status", "upload"])
def test_a_drip_fed_body_is_cut_at_the_deadline(target: Target, receiver: str) -> None:
    body = b"".join(upload_parts(MiB)) if receiver == "upload" else b"[" + b" " * 10_000 + b"]"
    drip = [body[i : i + 1] for i in range(100)]
    answer = exchange(target.server.port, target.head(receiver, len(body)), drip, gap=0.2)
    assert answer.error() == TIMEOUT
    assert DEADLINE - 0.1 < answer.seconds < DEADLINE + 3, answer.seconds  # timers: to the ms
    assert answer.closed and answer.sent < 30


@pytest.mark.parametrize("drip", [[], [b"X"] * 100], ids=["nothing", "a header byte at a time"])
def test_drip_fed_headers_are_cut_at_the_deadline(target: Target, drip: list[bytes]) -> None:
    """Before any of the app's code runs: a connection with nothing sent, or headers a byte at a time."""
    request_line = b"POST /logs HTTP/1.1\r\nHost: 127.0.0.1\r\n" if drip else b""
    answer = exchange(target.server.port, request_line, drip, gap=0.2)
    message = f"request headers not received within {DEADLINE} seconds"
    assert answer.error() == (408, {"code": "request_timeout", "message": message}, "close")
    assert DEADLINE - 0.1 < answer.seconds < DEADLINE + 3, answer.seconds  # timers: to the ms
    assert answer.closed


def test_a_drip_fed_login_form_is_cut_at_the_deadline(target: Target) -> None:
    """The dashboard's login form is posted without a token: it is held no longer than a receiver's body."""
    answer = exchange(target.server.port, target.head("/login", 100), [b"t"] * 100, gap=0.2)
    assert (answer.status, answer.headers["connection"]) == (408, "close")
    assert f"body not received within {DEADLINE} seconds" in answer.body.decode()
    assert DEADLINE - 0.1 < answer.seconds < DEADLINE + 3, answer.seconds  # timers: to the ms
    assert answer.closed


@pytest.mark.parametrize("receiver", ["/logs", "upload"])
def test_a_body_shorter_than_its_content_length_is_cut_at_the_deadline(target: Target, receiver: str) -> None:
    body = b"".join(upload_parts(0)) if receiver == "upload" else b"[]"
    answer = exchange(target.server.port, target.head(receiver, len(body) + 1000), [body])
    assert answer.error() == TIMEOUT
    assert DEADLINE - 0.1 < answer.seconds < DEADLINE + 3, answer.seconds  # timers: to the ms
    assert answer.closed


def test_a_body_longer_than_its_content_length_is_no_second_request(target: Target) -> None:
    """What follows the declared length is parsed as the next request, and refused by the HTTP parser."""
    answer = exchange(
        target.server.port, target.head("/logs", 2) + b"[]GET /health HTTP/1.1 GARBAGE\r\n\r\n", []
    )
    assert (answer.status, answer.body, answer.headers["connection"]) == (
        400,
        b"Invalid HTTP request received.",
        "close",
    )
    assert answer.closed


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("/logs", f"body of 10000000000 bytes is over the limit of {MAX_BODY} bytes"),
        ("/status", f"body of 10000000000 bytes is over the limit of {MAX_BODY} bytes"),
        ("upload", f"body of 10000000000 bytes is over the limit of {MAX_BODY} bytes"),
    ],
)
def test_a_declared_oversize_is_refused_before_the_body(target: Target, receiver: str, message: str) -> None:
    answer = exchange(target.server.port, target.head(receiver, 10**10), [b"[" * 65536] * 100)
    assert answer.error() == (413, {"code": "request_too_large", "message": message}, "close")
    assert answer.seconds < 2, answer.seconds
    assert answer.closed and answer.sent < 4 * MiB


@pytest.mark.parametrize(
    ("receiver", "parts", "limit"),
    [
        ("/logs", [b" " * MiB] * 64, MAX_BODY),
        ("upload", upload_parts(256 * MiB), MAX_BODY),
    ],
)
def test_an_undeclared_oversize_is_cut_while_it_streams(
    target: Target, receiver: str, parts: Iterable[bytes], limit: int
) -> None:
    answer = exchange(target.server.port, target.head(receiver, None), chunked(parts))
    message = f"body is over the limit of {limit} bytes"
    assert answer.error() == (413, {"code": "request_too_large", "message": message}, "close")
    assert answer.closed and limit < answer.sent < limit + 24 * MiB, answer.sent  # socket buffers: a few MiB
    assert target.peak_rss() < SERVER_RSS_BOUND


def test_a_gzip_bomb_is_refused_within_the_decoded_budget(target: Target) -> None:
    bomb = gzip.compress(b" " * (256 * MiB), 9)
    assert len(bomb) < MiB
    head = target.head("/logs", len(bomb), "Content-Encoding: gzip")
    answer = exchange(target.server.port, head, [bomb])
    message = f"body is over the limit of {MAX_DECODED} bytes after decompression"
    assert answer.error() == (413, {"code": "request_too_large", "message": message}, "close")
    assert answer.seconds < 5, answer.seconds
    assert target.peak_rss() < SERVER_RSS_BOUND


def test_a_bundle_bomb_upload_is_refused_within_the_bundle_budget(target: Target) -> None:
    """Four gzip members of 127 MiB of zeros in half a megabyte: the publish's bundle reader refuses the
    first at its header (a member is at most 64 MiB), before inflating it or checking any signature."""
    data = bomb([(f"m{i}", 127 * MiB, b"0") for i in range(4)])
    body = b"".join(upload_parts(0)).replace(
        f"\r\n--{BOUNDARY}--".encode(), data + f"\r\n--{BOUNDARY}--".encode()
    )
    answer = exchange(target.server.port, target.head("upload", len(body)), [body])
    message = f"bundle bundle.tar.gz: member m0: {127 * MiB} bytes, over {64 * MiB}"  # said by its header
    assert answer.error() == (400, {"code": "invalid_parameter", "message": message}, "")
    assert answer.seconds < 5, answer.seconds
    assert target.peak_rss() < SERVER_RSS_BOUND


HEADERS_TOO_LARGE = (
    431,
    {"code": "request_too_large", "message": f"request line and headers over {MAX_HEAD_BYTES} bytes"},
    "close",
)


@pytest.mark.parametrize(
    "extra",
    [[f"X-Big: {'v' * (8 * MiB)}"], ["a: b"] * (2 * MiB)],  # the 150 MiB and 8,000,000 of an attack, cut
    ids=["one long value", "many small headers"],
)
def test_headers_over_the_bound_are_refused_before_the_app(target: Target, extra: list[str]) -> None:
    """No token is needed to send headers: past 64 KiB the server answers 431 at once, having parsed
    none of the rest (an 8 MiB value took httptools seconds to append, and its memory grew with it)."""
    head = ("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{h}\r\n" for h in extra)).encode()
    pieces = [head[i : i + 65536] for i in range(0, len(head), 65536)]
    answer = exchange(target.server.port, pieces[0], pieces[1:], gap=0.05)
    assert answer.error() == HEADERS_TOO_LARGE
    assert answer.closed and answer.sent < 4 * MAX_HEAD_BYTES and answer.seconds < 2, answer
    assert target.peak_rss() < SERVER_RSS_BOUND


def test_headers_within_the_bound_are_answered_on_a_kept_connection(target: Target) -> None:
    """Just under the bound, twice on one connection (the count starts again with each request)."""
    filler = "X-Fill: " + "f" * (MAX_HEAD_BYTES - 60) + "\r\n"
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{filler}\r\n".encode()
    assert MAX_HEAD_BYTES - 20 < len(request) <= MAX_HEAD_BYTES
    with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
        sock.settimeout(15)
        for _ in range(2):
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                data += _recv(sock)
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]


@pytest.mark.parametrize("receiver", ["/login", "/logs", "/status", "upload"])
def test_a_client_that_leaves_mid_body_costs_no_traceback(target: Target, receiver: str) -> None:
    """Sent with a Content-Length of 100, seven bytes, then closed (no token needed for /login): the
    server says nothing of it, where it once logged a traceback of 3 KB per connection."""
    before = target.server.log.stat().st_size
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
            sock.sendall(target.head(receiver, 100) + b"partial")
    time.sleep(0.5)
    assert exchange(target.server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", []).status == 200
    logged = target.server.log.read_bytes()[before:].decode()
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged[-2000:]


def test_upgrade_requests_are_answered_without_filling_the_log(target: Target) -> None:
    """Anyone may send ``Upgrade: websocket``: answered as plain HTTP, and not two warnings each."""
    before = target.server.log.stat().st_size
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    for _ in range(20):
        assert exchange(target.server.port, head, []).status == 200
    logged = target.server.log.read_bytes()[before:].decode()
    assert "upgrade" not in logged.lower() and "WebSocket" not in logged, logged[-2000:]


def test_trailers_are_bounded_like_headers(target: Target) -> None:
    """A chunked body ended by a flood of trailer fields (httptools keeps them as headers): 431 once
    they pass the bound, though the app answered the missing token (401) before any of them came."""
    head = b"POST /logs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    trailers = b"0\r\n" + b"a: b\r\n" * (2 * MiB // 6)
    pieces = [trailers[i : i + 65536] for i in range(0, len(trailers), 65536)]
    with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
        sock.settimeout(15)
        sock.sendall(head)
        assert _head(sock).startswith(b"HTTP/1.1 401 ")
        for piece in pieces:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.01)
        rest = b""
        while chunk := _recv(sock):
            rest += chunk
    message = f"request trailers and chunk framing over {MAX_HEAD_BYTES} bytes"
    assert b"HTTP/1.1 431 " in rest and message.encode() in rest, rest[-300:]


def test_pipelined_requests_are_each_counted_as_their_own(target: Target) -> None:
    """A GET and a POST with a 200 KB body in one write: the POST's body is not taken for a head."""
    events = b"[" + b" " * 200_000 + b"]"
    post = target.head("/logs", len(events)) + events
    with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
        sock.settimeout(15)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post)
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            data += _recv(sock)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", data) == [b"200", b"200"], data[-500:]


@pytest.mark.parametrize(
    ("request_line", "status"), [("GET /health", 200), ("POST /logs", 401)], ids=["health", "no token"]
)
def test_the_rest_of_a_body_answered_early_is_cut_at_the_deadline(
    target: Target, request_line: str, status: int
) -> None:
    """An answer given before the body was read (a health check; a request without a token) left the
    connection open for as long as the client trickled the body: one byte a second held it for ever."""
    head = f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000000\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
        sock.settimeout(5)
        sock.sendall(head)
        answer = _head(sock)
        answered = time.monotonic()
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
        closed = None
        while time.monotonic() - answered < DEADLINE + 5:
            try:
                sock.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - answered
                break
            if select.select([sock], [], [], 0.2)[0] and _recv(sock) == b"":
                closed = time.monotonic() - answered
                break
    assert closed is not None, "the connection was still open"
    assert DEADLINE - 0.1 < closed < DEADLINE + 3, closed


def test_a_pipelined_request_behind_an_early_answer_keeps_its_own_deadline(target: Target) -> None:
    """The rest-of-body deadline is the answered request's: a request pipelined behind a health
    check, whose body trickles, gets its own 408 (the connection was closed under it, no answer)."""
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + target.head("/logs", 100)
    received = b""
    with socket.create_connection(("127.0.0.1", target.server.port)) as sock:
        sock.sendall(head)
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE + 5:  # until the 408 closes the connection
            if received.count(b"HTTP/1.1 ") < 2:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b" ")
            if select.select([sock], [], [], 0.2)[0]:
                chunk = _recv(sock)
                if not chunk:
                    break
                received += chunk
    answers = [part.split(b"\r\n", 1)[0] for part in received.split(b"HTTP/1.1 ")[1:]]
    assert answers == [b"200 OK", b"408 Request Timeout"], received[-300:]
    assert f"body not received within {DEADLINE} seconds".encode() in received
