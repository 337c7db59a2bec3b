"""A fault-injecting reverse proxy in front of a real OPA: the first requests get the planned faults
(delay, reset, truncated body, 5xx), later ones are forwarded untouched. Decisions always come from
the real OPA behind it."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ProxyFault:
    kind: str  # "status" | "delay" | "reset" | "truncate" | "ask_other"
    status: int = 500
    delay: float = 0.0
    other_input: dict[str, Any] | None = None
    """For "ask_other": the question really asked of OPA instead of the client's (a misrouted or
    replayed answer: a real decision, about another device or instant)."""


@dataclass
class FaultProxy:
    url: str
    faults: list[ProxyFault]
    requests: int = 0
    forwarded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (its timeout, before a delayed answer) is what a fault test expects:
        the write to it fails without a traceback in the test output; anything else is still shown."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextlib.contextmanager
def fault_proxy(upstream: str, faults: list[ProxyFault]) -> Iterator[FaultProxy]:
    target = urlsplit(upstream)
    state = FaultProxy(url="", faults=list(faults))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests += 1
                fault = state.faults.pop(0) if state.faults else None
            if fault is not None and fault.kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if fault is not None and fault.kind == "status":
                self.send_response(fault.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.delay)
            if fault is not None and fault.kind == "ask_other":
                body = json.dumps({"input": fault.other_input}).encode()
            upstream_conn = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=10
            )
            headers = {
                k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")
            }
            upstream_conn.request("POST", self.path, body=body, headers=headers)
            answer = upstream_conn.getresponse()
            payload = answer.read()
            upstream_conn.close()
            with state.lock:
                state.forwarded += 1
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if fault is not None and fault.kind == "truncate":
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = _QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
