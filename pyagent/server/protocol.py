"""uvicorn's httptools protocol, with a deadline on each request's headers.

uvicorn closes a connection idle between requests (``timeout_keep_alive``) but puts no bound on how
long a request's line and headers take: a client that sends a header byte a second holds a
connection for ever, before any of the app's code runs. Here a request's headers must be complete
within the same deadline as a body (``body_timeout_seconds``), counted from the connection or from
the request's first byte; past it the answer is 408 and the connection is closed. The body's own
deadline is the app's (:func:`pyagent.server.body.body_deadline`).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeaderDeadlineProtocol", "set_header_deadline"]

_deadline = {"seconds": 120.0}


def set_header_deadline(seconds: float) -> None:
    """The deadline of every connection this process opens from now on (set by the app factory, which
    runs in each server process before it serves)."""
    _deadline["seconds"] = seconds


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HTTP/1.1 over httptools: a request's headers within the deadline, or 408 and the connection closed."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # armed already when this is the connection's first request
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(_deadline["seconds"], self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        message = f"request headers not received within {_deadline['seconds']:g} seconds"
        body = json.dumps({"code": "request_timeout", "message": message}).encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()
