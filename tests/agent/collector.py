"""A small results collector for the shipping tests: stores each record once, by its Idempotency-Key.

It can fail on purpose: ``fail_next`` answers 500 to that many requests without storing them;
``store_then_fail`` stores the next requests and still answers 500 (the answer lost on the way).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    key: str | None
    body: dict[str, Any]
    authorization: str | None
    status: int


@dataclass
class CollectorState:
    url: str = ""
    token: str | None = None
    fail_next: int = 0
    store_then_fail: int = 0
    redirect: bool = False
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys_received(self) -> list[str | None]:
        with self.lock:
            return [r.key for r in self.requests]


@contextmanager
def run_collector(token: str | None = None) -> Iterator[CollectorState]:
    """A collector on a free loopback port; ``state.url`` is where to POST."""
    state = CollectorState(token=token)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            key = self.headers.get("Idempotency-Key")
            auth = self.headers.get("Authorization")
            with state.lock:
                status = self._decide(key, body, auth)
                state.requests.append(Received(key, body, auth, status))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the agent was SIGKILLed
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", state.url + "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        def _decide(self, key: str | None, body: dict[str, Any], auth: str | None) -> int:
            if state.token is not None and auth != f"Bearer {state.token}":
                return 401
            if key is None or key != body.get("id"):
                return 400
            if state.redirect:
                return 307
            if state.fail_next > 0:
                state.fail_next -= 1
                return 500
            state.stored.setdefault(key, body)  # idempotent: a re-sent key is not stored twice
            if state.store_then_fail > 0:
                state.store_then_fail -= 1
                return 500
            return 201

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1/results"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
