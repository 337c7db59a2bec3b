"""uvicorn's httptools protocol, with a deadline on each request's headers.

uvicorn closes a connection idle between requests (``timeout_keep_alive``) but puts no bound on how
long a request's line and headers take: a client that sends a header byte a second holds a
connection for ever, before any of the app's code runs. Here a request's headers must be complete
within the same deadline as a body (``body_timeout_seconds``), counted from the connection or from
the request's first byte; past it the answer is 408 and the connection is closed. The body's own
deadline is the app's (:func:`pyagent.server.body.body_deadline`).

A request's line and headers are also bounded in size (:data:`MAX_HEAD_BYTES`, as Go's server and
nginx bound them): httptools keeps whatever headers arrive, and grows a long value by appending to it
(quadratic in its length), so without a bound anyone, before any token is checked, could fill the
process's memory or stall its event loop. Past the bound the answer is 431 and the connection closed.
Trailers after a chunked body are headers to httptools too: what follows the head and is not body
(trailers, chunk framing) is bounded the same way, beyond half the body's size for framing.

An answer given before the request's body was read (a refused token, a health check that sent a
body) leaves the rest of that body the same deadline, counted from the answer: uvicorn reads and drops
it, and would hold the connection for as long as a client trickles it. Past the deadline the
connection is closed.

One peer address may have at most :data:`MAX_PENDING_HEADS_PER_PEER` connections that have waited
:data:`SLOW_HEAD_SECONDS` or more for a request's head; one more that waits as long is answered 503
and closed. Without it, one client opening connections and sending nothing held them all for the
deadline, up to the process's file limit, and then no agent, OPA or health check got an answer (an
attacker-side audit: 19,990 connections took the server down). Only slow connections count: a
burst of connections accepted together (a load balancer's after a failover) sends its heads within
milliseconds, and is never refused.

A keep-alive connection is also kept for a few seconds only (:data:`CONNECTION_MAX_AGE_SECONDS`): the
first answer after that says ``connection: close`` and the client connects again. The server's worker
processes share one listening socket and a connection stays with the process that accepted it, so a
few busy uploaders could otherwise sit on one process while another idles; a process busy decoding
is slower to accept, so connections made again go mostly to the idle one.
"""

from __future__ import annotations

import asyncio
import json
import resource
from collections import Counter

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pyagent.server.notify import DRAINING

__all__ = [
    "CONNECTION_MAX_AGE_SECONDS",
    "MAX_HEAD_BYTES",
    "MAX_PENDING_HEADS_PER_PEER",
    "SLOW_HEAD_SECONDS",
    "HeaderDeadlineProtocol",
    "held_poll_limit",
    "raise_file_limit",
    "set_header_deadline",
]

_deadline = {"seconds": 120.0}

#: The most bytes a request's line and headers may take (OPA's clients send well under 2 KiB; a
#: browser's, with the dashboard's cookie, under 8 KiB).
MAX_HEAD_BYTES = 64 * 1024

#: How long a keep-alive connection serves requests before its next answer closes it.
CONNECTION_MAX_AGE_SECONDS = 2.0

#: The most connections of one peer address that wait for a request's head :data:`SLOW_HEAD_SECONDS` or
#: more at once (in this process).
MAX_PENDING_HEADS_PER_PEER = 256
SLOW_HEAD_SECONDS = 1.0
#: What an unlimited open-file limit counts as (Linux's own bound, ``nr_open``, by default).
_UNBOUNDED_FILES = 1 << 20
_pending_heads: Counter[str] = Counter()


def raise_file_limit() -> int:
    """This process's open-file limit raised to its hard limit, as Go's runtime raises OPA's: every
    connection (each held long poll) is a file, and Linux's usual soft limit of 1,024 held a server to
    a thousand agents. The limit now (processes started from here inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _UNBOUNDED_FILES
    # an unlimited hard limit cannot be the soft one (the kernel's own bound, macOS's 10,240, is lower)
    for target in [hard] if hard != resource.RLIM_INFINITY else [_UNBOUNDED_FILES, 65_536, 10_240]:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):  # (a container or system that forbids it: try less, or keep it)
            continue
    return soft


def held_poll_limit() -> int:
    """The most long polls this process holds at once: half its open-file limit, so that held polls
    (one connection each) leave files for new connections, the database and the bundles. Past it a
    poll gets the bundle at once, as from a service that does not long poll (``bundles.py``)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, (_UNBOUNDED_FILES if soft == resource.RLIM_INFINITY else soft) // 2)


def set_header_deadline(seconds: float) -> None:
    """The deadline of every connection this process opens from now on (set by the app factory, which
    runs in each server process before it serves)."""
    _deadline["seconds"] = seconds


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HTTP/1.1 over httptools: a request's headers within the deadline, or 408 and the connection closed."""

    _header_timer: asyncio.TimerHandle | None = None
    _slow_timer: asyncio.TimerHandle | None = None
    """Fires when a request's head is slow to come (:data:`SLOW_HEAD_SECONDS`)."""
    _pending_peer: str | None = None
    """The peer address this connection counts in while its head is slow to come."""
    _rest_timer: asyncio.TimerHandle | None = None
    """Armed when an answer went out before its request's body was all read."""
    _close_after: float = 0.0
    _in_head = True
    """Bytes arriving now belong to a request's line and headers (not yet to its body)."""
    _head_bytes = 0
    _after_head = 0
    """Bytes read since the head: the body, its chunk framing and any trailers."""
    _body_bytes = 0

    def _unsupported_upgrade_warning(self) -> None:
        """An ``Upgrade`` request is answered as plain HTTP (this server speaks no WebSocket), said at
        debug level: uvicorn logged two warnings for each, one of them about a missing WebSocket
        library, so anyone, before any token is checked, could fill the log with them."""
        self.logger.debug("an Upgrade request is answered as plain HTTP")

    def data_received(self, data: bytes) -> None:
        # Every read is counted whole and fed; the parser's callbacks say where a head ends (a read
        # may hold the end of one request and the start of the next), and the bound is checked after
        # each read: past it by one read at most (asyncio reads up to 256 KiB), never by the megabytes
        # over which httptools' appending grows quadratic.
        if self._in_head:
            self._head_bytes += len(data)
        else:
            self._after_head += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                "request_too_large",
                f"request line and headers over {MAX_HEAD_BYTES} bytes",
            )
        elif (
            not self._in_head and self._after_head - self._body_bytes > MAX_HEAD_BYTES + self._body_bytes // 2
        ):
            # trailers (kept as headers, and appended to as they are) or chunk framing past any
            # sender's need: what is not body after the head is bounded as the head is
            self._refuse(
                431,
                "Request Header Fields Too Large",
                "request_too_large",
                f"request trailers and chunk framing over {MAX_HEAD_BYTES} bytes",
            )

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_rest_timer()  # (the body of a request answered early came in time)
        self._count_from(in_head=True)  # a next request's head may follow

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle  # (the newest request read: a pipelined one may follow the one answered)
        answered = cycle is not None and cycle.response_complete
        if answered and cycle.more_body and not self.transport.is_closing():
            # answered before its body was read: the rest of it within the deadline, or the connection goes
            self._stop_rest_timer()
            self._rest_timer = self.loop.call_later(_deadline["seconds"], self._rest_late)

    def _rest_late(self) -> None:
        self._rest_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _stop_rest_timer(self) -> None:
        if self._rest_timer is not None:
            self._rest_timer.cancel()
            self._rest_timer = None

    def _count_from(self, *, in_head: bool) -> None:
        """Start counting a request's head (``in_head``) or what follows it, from nothing."""
        self._in_head, self._head_bytes, self._after_head, self._body_bytes = in_head, 0, 0, 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._close_after = self.loop.time() + CONNECTION_MAX_AGE_SECONDS
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # armed already when this is the connection's first request
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._count_from(in_head=False)
        super().on_headers_complete()
        if self.loop.time() >= self._close_after and self.cycle is not None:
            self.cycle.keep_alive = False  # this answer says connection: close (see the module's docstring)

    def shutdown(self) -> None:
        """The server's graceful shutdown begins: held long polls are told to answer (``DRAINING``)."""
        DRAINING.set()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_rest_timer()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(_deadline["seconds"], self._headers_late)
        self._slow_timer = self.loop.call_later(SLOW_HEAD_SECONDS, self._head_slow)

    def _head_slow(self) -> None:
        """The head is slow to come: counted for its peer address, or refused past the bound (between
        reads: a head not all read yet is never run)."""
        self._slow_timer = None
        peer = self.client[0] if self.client else ""
        if self.transport.is_closing():
            return
        if _pending_heads[peer] >= MAX_PENDING_HEADS_PER_PEER:
            message = f"{MAX_PENDING_HEADS_PER_PEER} connections from this address wait to send a request"
            self._refuse(503, "Service Unavailable", "too_many_connections", message)
            return
        _pending_heads[peer] += 1
        self._pending_peer = peer

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            self._slow_timer = None
        if self._pending_peer is not None:
            _pending_heads[self._pending_peer] -= 1
            if not _pending_heads[self._pending_peer]:
                del _pending_heads[self._pending_peer]
            self._pending_peer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        message = f"request headers not received within {_deadline['seconds']:g} seconds"
        self._refuse(408, "Request Timeout", "request_timeout", message)

    def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
        """Answer ``status`` with the server's JSON error, before the app sees the request, and close."""
        self._disarm()
        body = json.dumps({"code": code, "message": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()
