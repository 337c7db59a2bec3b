"""Requests to one target over connections kept open between them (HTTP/1.1 keep-alive), with the
guarantees of :func:`pyagent.bounded_http.request`: no redirect followed, one deadline per request, the
answer bounded in size. The ``opa`` engine asks one OPA for decision after decision through one.

What keeping a connection adds, and how it stays safe:

- a connection is kept only after an answer read to its end that did not ask to close it, and never
  after an error or a cut;
- before a kept connection carries a request, it must have nothing to read: a server that closed it
  (its keep-alive timeout: nginx's is 75 s) makes it readable, and so do bytes a server sent between
  answers, which would otherwise become the next request's answer. Either way it is closed unused;
- a connection idle for more than :data:`MAX_IDLE_SECONDS` is closed unused too, since NATs and load
  balancers drop idle flows without a word;
- the server may still close a kept connection just as a request leaves: when sending fails, or the
  connection closes before a single byte of the answer, the request goes once more, on a new
  connection, within the same deadline. The request is then sent twice, which a query (an OPA
  decision) allows; a new connection is never resent;
- one watchdog thread per session cuts every request at its deadline once connected, including a
  server that dribbles its answer one byte at a time, without a thread per request. Resolving the
  name, connecting to all the addresses it resolves to, and the TLS handshake are bounded by the time
  left (``core.connect_within``, and CPython's ssl module).

:func:`request`, the one-shot request of the plug-ins, is a session that keeps nothing.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from pyagent.bounded_http.core import (
    Reply,
    Sink,
    Target,
    await_answer,
    cut,
    failure,
    open_connection,
    receive,
    send,
)

__all__ = ["MAX_IDLE_SECONDS", "Session", "request"]

MAX_IDLE_SECONDS = 30.0
"""A kept connection idle longer than this is closed rather than reused (Go's HTTP client: 90 s)."""

#: Failures of a kept connection that the server closed as the request left: sending failed, or the
#: connection ended before the first byte of the answer. TLS reports a closed connection as an EOF.
_CLOSED_WHILE_SENDING = (
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)
_CLOSED_BEFORE_ANSWER = (http.client.RemoteDisconnected, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def request(
    target: Target,
    method: str,
    path: str,
    *,
    timeout: float,
    max_body: int,
    headers: dict[str, str],
    body: bytes | None = None,
    sink: Sink | None = None,
    head_timeout: float | None = None,
) -> Reply:
    """One request on a connection of its own, finished within ``timeout`` seconds or
    :class:`~pyagent.bounded_http.TransportError`: a :class:`Session` that keeps nothing, so that the
    one-shot request and the session share one deadline mechanism.

    A 2xx body goes to ``sink`` when one is given; every other body (an error message) is read up
    to 16 KiB. A 2xx body over ``max_body`` raises :class:`~pyagent.bounded_http.BodyTooLarge`. With
    ``head_timeout``, the answer's status line and headers must also come within that many seconds
    of the request being sent (OPA's ``response_header_timeout_seconds``), however long the whole
    may take.
    """
    session = Session(target, max_idle=0)
    try:
        return session.request(
            method,
            path,
            timeout=timeout,
            max_body=max_body,
            headers=headers,
            body=body,
            sink=sink,
            head_timeout=head_timeout,
        )
    finally:
        session.close()


@dataclass(frozen=True)
class _Bound:
    """A deadline (monotonic) and the seconds it was given as, for messages."""

    deadline: float
    seconds: float


class _Closed(Exception):
    """A kept connection turned out closed by the server before it answered: ask on a new one."""


class Session:
    """Keep-alive requests to ``target``; thread-safe (concurrent requests use separate connections).
    :meth:`close` closes the kept connections; a request after it still works, on a connection that
    is closed after its answer."""

    def __init__(self, target: Target, *, max_idle: int = 4) -> None:
        self.target = target
        self._max_idle = max_idle
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []  # with the time it went idle
        self._lock = threading.Lock()
        self._watchdog = _Watchdog()
        self._closed = False

    def request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        max_body: int,
        headers: dict[str, str],
        body: bytes | None = None,
        sink: Sink | None = None,
        head_timeout: float | None = None,
    ) -> Reply:
        """As :func:`pyagent.bounded_http.request`, on a kept connection when there is a usable one."""
        whole = _Bound(time.monotonic() + timeout, timeout)
        where = f"{method} {self.target.origin}{path}"
        kept = self._take_kept()
        if kept is not None:
            try:
                return self._exchange(
                    kept, True, method, path, head_timeout, whole, where, max_body, headers, body, sink
                )
            except _Closed:
                pass  # once more, on a new connection
        conn = open_connection(self.target, max(0.001, whole.deadline - time.monotonic()))
        return self._exchange(
            conn, False, method, path, head_timeout, whole, where, max_body, headers, body, sink
        )

    def close(self) -> None:
        """Close the kept connections and stop the watchdog."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()
        self._watchdog.stop()

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        kept: bool,
        method: str,
        path: str,
        head_timeout: float | None,
        whole: _Bound,
        where: str,
        max_body: int,
        headers: dict[str, str],
        body: bytes | None,
        sink: Sink | None,
    ) -> Reply:
        armed: socket.socket | None = None
        phase = whole  # the whole request's bound; the answer's head may have a shorter one of its own
        try:
            if not kept:
                conn.connect()  # bounded by the socket timeout, the time left (as in request())
            # the socket is held: http.client lets go of conn.sock while it reads an answer that closes
            # the connection, and the watchdog must still be able to cut it
            armed = conn.sock
            self._watchdog.arm(armed, whole.deadline)
            try:
                send(conn, method, path, whole.deadline, where, whole.seconds, headers, body)
            except _CLOSED_WHILE_SENDING:
                if kept and time.monotonic() < whole.deadline:
                    raise _Closed() from None
                raise
            if head_timeout is not None and time.monotonic() + head_timeout < whole.deadline:
                # as Go's ResponseHeaderTimeout (OPA's response_header_timeout_seconds): from the
                # request sent to the answer's headers
                phase = _Bound(time.monotonic() + head_timeout, head_timeout)
                self._watchdog.arm(armed, phase.deadline)
            try:
                response = await_answer(conn, phase.deadline, where, phase.seconds)
            except _CLOSED_BEFORE_ANSWER:
                if kept and time.monotonic() < phase.deadline:
                    raise _Closed() from None
                raise
            if phase is not whole:
                phase = whole
                self._watchdog.arm(armed, whole.deadline)
                if armed is not None:  # (conn.sock is gone when the answer closes the connection)
                    armed.settimeout(max(0.001, whole.deadline - time.monotonic()))
            reply, reusable = receive(conn, response, whole.deadline, where, whole.seconds, max_body, sink)
        except BaseException as err:
            self._watchdog.disarm(armed)
            conn.close()
            if isinstance(err, OSError | http.client.HTTPException):
                raise failure(err, phase.deadline, where, phase.seconds) from err
            raise
        was_cut = self._watchdog.disarm(armed)
        self._give_back(conn, reusable and not was_cut)
        return reply

    def _take_kept(self) -> http.client.HTTPConnection | None:
        """The most recently used kept connection that is still usable; the others it meets are closed."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn, idle_since = self._idle.pop()
            if time.monotonic() - idle_since <= MAX_IDLE_SECONDS and _quiet(conn):
                return conn
            conn.close()

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()


def _quiet(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection has nothing to read: a closed one reads as EOF, and a server has no
    business sending between answers."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class _Watchdog:
    """One daemon thread that cuts each armed socket at its deadline. It is woken only when a deadline
    comes before the one it sleeps until, not on every request, and ends once stopped with nothing
    armed (a request in flight keeps its deadline)."""

    def __init__(self) -> None:
        self._armed: dict[socket.socket, float] = {}
        self._cut: set[socket.socket] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wakes_at: float | None = None  # None: asleep until notified

    def arm(self, sock: socket.socket | None, deadline: float) -> None:
        if sock is None:  # not connected: nothing to cut (connect() raised already)
            return
        with self._wake:
            self._armed[sock] = deadline
            if self._thread is None:
                self._start()
            elif self._wakes_at is None or deadline < self._wakes_at:
                self._wake.notify()

    def disarm(self, sock: socket.socket | None) -> bool:
        """Stop watching ``sock``; whether it was cut."""
        with self._wake:
            if sock is None:
                return False
            self._armed.pop(sock, None)
            was_cut = sock in self._cut
            self._cut.discard(sock)
            if self._stopped and not self._armed:
                self._wake.notify()  # nothing left to watch: let the thread end now
            return was_cut

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _start(self) -> None:  # with self._wake held
        self._thread = threading.Thread(target=self._run, name="pyagent-http-deadline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._wake:
                while not (self._stopped and not self._armed):
                    now = time.monotonic()
                    for sock, deadline in list(self._armed.items()):
                        if deadline <= now:
                            del self._armed[sock]
                            self._cut.add(sock)
                            cut(sock)
                    self._wakes_at = min(self._armed.values(), default=None)
                    self._wake.wait(None if self._wakes_at is None else max(0.0, self._wakes_at - now))
        finally:
            with self._wake:
                self._thread = None
                self._wakes_at = None
                if self._armed:  # armed as it was leaving: the deadline still holds
                    self._start()
