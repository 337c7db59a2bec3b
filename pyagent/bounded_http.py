"""Bounded HTTP: one request, finished within a total deadline, its answer bounded in size.

Used by every HTTP reader of the agent (decision queries to an OPA server, the plug-ins' bundle
downloads, uploads and status reports). What it guarantees, whatever the server does:

- no redirect is followed: a 3xx is an answer like any other, for the caller to refuse;
- one deadline covers connect, sending, headers and body: a watchdog ends the connection when it
  passes, so a server that dribbles its headers or its body one byte a second is cut at the deadline;
- a body is read in chunks up to a limit (checked against ``Content-Length`` first, then while it
  arrives), so a huge answer is refused before it is in memory; a body cut short is an error.

:func:`request` opens a connection per request. A :class:`Session` (the ``opa`` engine's, which asks
one OPA for decision after decision) keeps connections open between requests (HTTP/1.1 keep-alive)
with the same guarantees: one watchdog thread per session cuts any request past its deadline, and a
connection is reused only after an answer read to its end that did not ask to close it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from pyagent.termsafe import shorten

CHUNK = 64 * 1024
MAX_ERROR_BODY = 16 * 1024


class Sink(Protocol):
    """Where a 2xx body is streamed: a binary file, or anything with ``write``."""

    def write(self, data: bytes, /) -> object: ...


class TransportError(Exception):
    """No complete answer: connection refused or reset, TLS failure, deadline passed. One line.

    ``kind`` says which, for callers that retry some failures and not others: ``timeout``,
    ``refused``, ``reset``, ``tls``, ``cut`` (the answer ended early), ``too_large`` or ``other``.
    ``detail`` is the message without the request it is about.
    """

    kind = "other"

    def __init__(self, where: str, detail: str | None = None, kind: str | None = None) -> None:
        super().__init__(where if detail is None else f"{where}: {detail}")
        self.detail = where if detail is None else detail
        if kind is not None:
            self.kind = kind


class BodyTooLarge(TransportError):
    """The answer's body is over the limit; refused before or while it arrived."""

    kind = "too_large"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    """The body, unless it was streamed to a sink."""
    size: int

    def message(self) -> str:
        """A one-line description of a non-2xx answer, with the server's ``message`` when it gave one."""
        detail = ""
        try:
            document = json.loads(self.body) if self.body else None
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            detail = ": " + shorten(document["message"], 300)
        if 300 <= self.status < 400:
            where = shorten(self.headers.get("location", "?"))
            return f"HTTP {self.status} redirect to {where} (redirects are not followed)"
        return f"HTTP {self.status}{detail}"


@dataclass(frozen=True)
class Target:
    """Where requests go: a host and port, and a TLS context for https."""

    host: str
    port: int
    context: ssl.SSLContext | None
    origin: str
    """``scheme://host[:port]`` for messages: never with user-info."""


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
) -> Reply:
    """One request, finished within ``timeout`` seconds or :class:`TransportError`.

    A 2xx body goes to ``sink`` when one is given; every other body (an error message) is read up
    to 16 KiB. A 2xx body over ``max_body`` raises :class:`BodyTooLarge`.
    """
    deadline = time.monotonic() + timeout
    where = f"{method} {target.origin}{path}"
    conn = _connection(target, timeout)
    watchdog = threading.Timer(timeout, _cut, (conn,))  # a server that dribbles headers is cut too
    watchdog.daemon = True
    try:
        conn.connect()
        watchdog.start()
        response = _send(conn, method, path, deadline, where, timeout, headers, body)
        reply, _ = _receive(conn, response, deadline, where, timeout, max_body, sink)
        return reply
    except (OSError, http.client.HTTPException) as err:
        raise _failure(err, deadline, where, timeout) from err
    finally:
        watchdog.cancel()
        conn.close()


def _connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if target.context is not None:
        return http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=target.context)
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout)


def _send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    deadline: float,
    where: str,
    timeout: float,
    headers: dict[str, str],
    body: bytes | None,
) -> http.client.HTTPResponse:
    """Send the request on ``conn``; the answer's status line and headers."""
    _bound(conn, deadline, where, timeout)
    conn.request(method, path, body=body, headers=headers)
    _bound(conn, deadline, where, timeout)
    return conn.getresponse()


def _receive(
    conn: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: float,
    where: str,
    timeout: float,
    max_body: int,
    sink: Sink | None,
) -> tuple[Reply, bool]:
    """The answer's body, bounded: the reply, and whether ``conn`` may carry another request (the
    answer was read to its end and did not ask to close the connection)."""
    names = {k.lower(): v for k, v in response.getheaders()}
    ok = 200 <= response.status < 300
    limit = max_body if ok else MAX_ERROR_BODY
    declared = names.get("content-length", "")
    if ok and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(where, f"the answer is {declared} bytes, over the limit of {limit}")
    content, size = _read(conn, response, deadline, where, timeout, limit, sink if ok else None, ok)
    read_to_end = response.isclosed() or response.length == 0  # a Content-Length read whole stays open
    reusable = read_to_end and not response.will_close
    if reusable:
        response.close()  # the answer's reader, not the connection: it can carry the next request
    return Reply(response.status, names, content, size), reusable


def _failure(err: BaseException, deadline: float, where: str, timeout: float) -> TransportError:
    if time.monotonic() >= deadline:
        return TransportError(where, f"no complete answer within {timeout:g} s", "timeout")
    return TransportError(where, *_describe(err, timeout))


#: Errors of a kept-open connection that the server closed while it sat idle (its keep-alive timeout):
#: raised before any answer arrived, so the request is sent again once on a new connection.
_STALE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected)


class Session:
    """Requests to one target over connections kept open between them (HTTP/1.1 keep-alive), with
    :func:`request`'s guarantees. Thread-safe: concurrent requests use separate connections.

    A connection goes back to the session only after an answer read to its end that did not ask to
    close it; any failure closes it. A kept connection the server closed meanwhile fails before an
    answer starts: the request then goes once more on a new connection, within the same deadline.
    """

    def __init__(self, target: Target, *, max_idle: int = 4) -> None:
        self.target = target
        self._max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._watchdog = _Watchdog()

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
    ) -> Reply:
        """As :func:`request`, on a kept connection when there is one."""
        deadline = time.monotonic() + timeout
        where = f"{method} {self.target.origin}{path}"
        while True:
            conn, kept = self._take(timeout)
            self._watchdog.arm(conn, deadline)
            try:
                if not kept:
                    conn.connect()
                try:
                    response = _send(conn, method, path, deadline, where, timeout, headers, body)
                except _STALE:
                    if kept and time.monotonic() < deadline:
                        conn.close()
                        continue  # closed by the server while idle: nothing was answered, ask again
                    raise
                reply, reusable = _receive(conn, response, deadline, where, timeout, max_body, sink)
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                raise _failure(err, deadline, where, timeout) from err
            except BaseException:
                conn.close()
                raise
            finally:
                self._watchdog.disarm(conn)
            self._give_back(conn, reusable)
            return reply

    def close(self) -> None:
        """Close the kept connections and stop the watchdog; a later request opens new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._watchdog.stop()

    def _take(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _connection(self.target, timeout), False

    def _give_back(self, conn: http.client.HTTPConnection, reusable: bool) -> None:
        with self._lock:
            if reusable and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()


class _Watchdog:
    """One daemon thread that cuts each armed connection at its deadline: a session's requests get
    :func:`request`'s bound on a server that dribbles its answer without a thread each. The thread is
    woken only when a deadline comes before the one it sleeps until, not on every request."""

    def __init__(self) -> None:
        self._armed: dict[http.client.HTTPConnection, float] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wakes_at: float | None = None  # None: asleep until notified

    def arm(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        with self._wake:
            self._armed[conn] = deadline
            self._stopped = False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pyagent-http-deadline", daemon=True)
                self._thread.start()
            if self._wakes_at is None or deadline < self._wakes_at:
                self._wake.notify()

    def disarm(self, conn: http.client.HTTPConnection) -> None:
        with self._wake:
            self._armed.pop(conn, None)

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                now = time.monotonic()
                for conn, deadline in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[conn]
                        _cut(conn)
                self._wakes_at = min(self._armed.values(), default=None)
                self._wake.wait(None if self._wakes_at is None else max(0.0, self._wakes_at - now))
            self._thread = None


def _cut(conn: http.client.HTTPConnection) -> None:
    """The deadline passed: end the connection, whatever the request is waiting for."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _bound(conn: http.client.HTTPConnection, deadline: float, where: str, timeout: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TransportError(where, f"no complete answer within {timeout:g} s", "timeout")
    if conn.sock is not None:
        conn.sock.settimeout(remaining)


def _read(
    conn: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: float,
    where: str,
    timeout: float,
    limit: int,
    sink: Sink | None,
    ok: bool,
) -> tuple[bytes, int]:
    parts: list[bytes] = []
    size = 0
    while True:
        _bound(conn, deadline, where, timeout)
        chunk = response.read1(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            if not ok:  # an error's body: what arrived is enough to tell the error
                parts.append(chunk[: max(0, limit - (size - len(chunk)))])
                return b"".join(parts), size
            raise BodyTooLarge(where, f"the answer is over the limit of {limit} bytes; refused")
        if sink is not None:
            sink.write(chunk)
        else:
            parts.append(chunk)
    if ok and response.length:  # the connection ended before the Content-Length was reached
        raise TransportError(where, "the answer was cut short", "cut")
    return b"".join(parts), size


def _describe(err: BaseException, timeout: float) -> tuple[str, str]:
    if isinstance(err, socket.timeout | TimeoutError):
        return f"no complete answer within {timeout:g} s", "timeout"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {err.reason or err}", "tls"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused", "refused"
    if isinstance(err, http.client.IncompleteRead):
        return "the answer was cut short", "cut"
    kind = "reset" if isinstance(err, ConnectionResetError | http.client.RemoteDisconnected) else "other"
    text = str(err).strip().splitlines()
    return (f"{type(err).__name__}: {shorten(text[0])}" if text else type(err).__name__), kind
