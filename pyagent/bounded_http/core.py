"""Bounded HTTP: one request, finished within a total deadline, its answer bounded in size.

Used by every HTTP reader of the agent (decision queries to an OPA server, the plug-ins' bundle
downloads, uploads and status reports). What it guarantees, whatever the server does:

- no redirect is followed: a 3xx is an answer like any other, for the caller to refuse;
- one deadline covers connect, sending, headers and body: a watchdog ends the connection when it
  passes, so a server that dribbles its headers or its body one byte a second is cut at the deadline;
- a body is read in chunks up to a limit (checked against ``Content-Length`` first, then while it
  arrives), so a huge answer is refused before it is in memory; a body cut short is an error.

This module holds the types and the steps of a request; :mod:`pyagent.bounded_http.session` runs
them, with the one watchdog that enforces the deadline, for a one-shot request and for a session.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyagent.redact import REDACTED, redact
from pyagent.termsafe import shorten

CHUNK = 64 * 1024
MAX_ERROR_BODY = 16 * 1024


class Sink(Protocol):
    """Where a 2xx body is streamed: a binary file, or anything with ``write``."""

    def write(self, data: bytes, /) -> object: ...


class TransportError(Exception):
    """No complete answer: connection refused or reset, TLS failure, deadline passed. One line.

    ``kind`` says which, for callers that retry some failures and not others: ``timeout``,
    ``refused``, ``reset``, ``tls``, ``cut`` (the answer ended early), ``too_large``, ``untrusted`` (a
    Unix socket served by another user) or ``other``.
    ``detail`` is the message without the request it is about.
    """

    kind = "other"

    def __init__(self, where: str, detail: str | None = None, kind: str | None = None) -> None:
        super().__init__(where if detail is None else f"{where}: {detail}")
        self.detail = where if detail is None else detail
        if kind is not None:
            self.kind = kind


class BodyTooLarge(TransportError):
    """The answer's body is over the limit; refused before or while it arrived. Only a 2xx answer's
    body is refused so (an error's is cut to what tells the error): callers that need no body (an
    upload) read it as a 2xx."""

    kind = "too_large"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    """The body, unless it was streamed to a sink."""
    size: int
    secrets: tuple[str, ...] = ()
    """What the request presented (a bearer token): never repeated by :meth:`message`."""

    def _error_field(self, name: str) -> str | None:
        """A string field of an OPA-style error body (``{"code": ..., "message": ...}``), if there."""
        try:
            document = json.loads(self.body) if self.body else None
        except (ValueError, RecursionError):
            return None
        value = document.get(name) if isinstance(document, dict) else None
        return value if isinstance(value, str) else None

    def error_code(self) -> str | None:
        """The ``code`` of an OPA-style error body, if it has one."""
        return self._error_field("code")

    def message(self) -> str:
        """A one-line description of a non-2xx answer, with the server's ``message`` when it gave one.

        What a server says is kept (agent status, status uploads, the spool) and shown: credentials
        in it, and the request's own ``secrets`` echoed back, are redacted (``***``)."""
        said = self._error_field("message")
        detail = "" if said is None else ": " + shorten(self.unsecret(said), 300)  # whole secrets, then cut
        if 300 <= self.status < 400:
            where = shorten(self.unsecret(self.headers.get("location", "?")))
            return f"HTTP {self.status} redirect to {where} (redirects are not followed)"
        return f"HTTP {self.status}{detail}"

    def unsecret(self, text: str) -> str:
        """``text`` (something the server said) without credentials or the request's ``secrets``."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, REDACTED)
        return redact(text)


@dataclass(frozen=True)
class Target:
    """Where requests go: a host and port, and a TLS context for https; or the path of a Unix domain
    socket (``unix.py``: only a server of this user or root is asked)."""

    host: str
    port: int
    context: ssl.SSLContext | None
    origin: str
    """``scheme://host[:port]`` (``unix:///path``) for messages: never with user-info."""
    unix_path: str | None = None


# The steps of a request, run by session.py.


def open_connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    """A connection to ``target`` (not yet connected); ``timeout`` bounds each socket operation, and
    connecting as a whole (:func:`connect_within`)."""
    if target.unix_path is not None:
        from pyagent.bounded_http.unix import UnixHTTPConnection  # it builds on this module

        return UnixHTTPConnection(target.unix_path, target.origin, timeout)
    conn = (
        http.client.HTTPSConnection(target.host, target.port, timeout=timeout, context=target.context)
        if target.context is not None
        else http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    )
    # http.client connects through this attribute (CPython's own hook, used by its tests); the TLS
    # handshake that follows is bounded by the socket's timeout as a whole (CPython's ssl module)
    setattr(conn, "_create_connection", connect_within)  # noqa: B010 (not in the type stubs)
    return conn


def connect_within(
    address: tuple[str, int], timeout: float, source_address: tuple[str, int] | None = None
) -> socket.socket:
    """``socket.create_connection`` within ``timeout`` seconds in all, resolving the name included
    (the standard one gives each address the name resolves to the whole timeout, so a name with N
    unreachable addresses took N times as long, and waits for the resolver as long as it takes). The
    socket returned has the time left as its timeout."""
    host, port = address
    end = time.monotonic() + timeout
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in _resolve(host, port, timeout):
        remaining = end - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
            sock.settimeout(max(0.001, end - time.monotonic()))
            return sock
        except OSError as err:
            sock.close()
            last = err
    if last is not None and time.monotonic() < end:
        raise last
    raise TimeoutError(f"not connected within {timeout:g} s")


_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


def _resolve(host: str, port: int, timeout: float) -> Sequence[_AddrInfo]:
    """``getaddrinfo`` for a stream socket, given up after ``timeout`` seconds. An address needs no
    resolver; a name is resolved on a thread of its own, left to finish in the background when the
    time is up (the C resolver cannot be interrupted)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    found: list[_AddrInfo] = []
    failed: list[OSError] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as err:
            failed.append(err)
        finally:
            done.set()

    threading.Thread(target=resolve, name="pyagent-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{host} not resolved within {timeout:g} s")
    if failed:
        raise failed[0]
    return found


def send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    deadline: float,
    where: str,
    timeout: float,
    headers: dict[str, str],
    body: bytes | None,
) -> None:
    """Send the request on ``conn``."""
    _bound(conn, deadline, where, timeout)
    conn.request(method, path, body=body, headers=headers)


def await_answer(
    conn: http.client.HTTPConnection, deadline: float, where: str, timeout: float
) -> http.client.HTTPResponse:
    """The answer's status line and headers."""
    _bound(conn, deadline, where, timeout)
    return conn.getresponse()


def receive(
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
    _check_framing(response, where)
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


def _check_framing(response: http.client.HTTPResponse, where: str) -> None:
    """Refuse an answer whose length two readers could read differently: two Content-Lengths that
    differ, one that is no number, or one beside a Transfer-Encoding (RFC 9112, 6.3: a sender that
    does so is broken or smuggling; the body of such an answer is no one thing)."""
    lengths = [value.strip() for name, value in response.getheaders() if name.lower() == "content-length"]
    if not lengths:
        return
    chunked = any(name.lower() == "transfer-encoding" for name, _ in response.getheaders())
    if chunked or len(set(lengths)) > 1 or not all(v.isascii() and v.isdigit() for v in lengths):
        shown = ", ".join(repr(v[:20]) for v in lengths[:3]) + (" and a Transfer-Encoding" if chunked else "")
        raise TransportError(
            where, f"the answer's length is ambiguous (Content-Length {shown}); refused", "other"
        )


def failure(err: BaseException, deadline: float, where: str, timeout: float) -> TransportError:
    if time.monotonic() >= deadline:
        return TransportError(where, f"no complete answer within {timeout:g} s", "timeout")
    return TransportError(where, *_describe(err, timeout))


def cut(sock: socket.socket | None) -> None:
    """The deadline passed: end the connection, whatever the request is waiting for."""
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
        if time.monotonic() >= deadline:  # the watchdog ended it
            raise TransportError(where, f"no complete answer within {timeout:g} s", "timeout")
        raise TransportError(where, "the answer was cut short", "cut")
    return b"".join(parts), size


def _describe(err: BaseException, timeout: float) -> tuple[str, str]:
    if isinstance(err, socket.timeout | TimeoutError):
        return f"no complete answer within {timeout:g} s", "timeout"
    if isinstance(err, ssl.SSLCertVerificationError) and err.verify_message:
        # why the certificate was refused (expired, another host's, an unknown CA), not only that it was
        return f"TLS failed: {err.reason or 'CERTIFICATE_VERIFY_FAILED'}: {err.verify_message}", "tls"
    if isinstance(err, ssl.SSLError):
        return f"TLS failed: {err.reason or err}", "tls"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused", "refused"
    if isinstance(err, FileNotFoundError):  # a Unix socket's path that is not there
        return "no socket at that path", "refused"
    if isinstance(err, http.client.IncompleteRead):
        return "the answer was cut short", "cut"
    kind = "reset" if isinstance(err, ConnectionResetError | http.client.RemoteDisconnected) else "other"
    text = str(err).strip().splitlines()
    return (f"{type(err).__name__}: {shorten(text[0])}" if text else type(err).__name__), kind
