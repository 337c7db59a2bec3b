"""A fault-injecting OPA decision-log endpoint for the upload tests: gzip JSON arrays in, each event stored
once by its chain hash (``pyagent.hash``), as an idempotent server would.

It can fail on purpose: ``fail_next`` answers 500 to that many requests without storing them;
``store_then_fail`` stores the next requests and still answers 500 (the answer lost on the way);
``redirect`` answers 307; ``refuse`` answers 400 to any batch holding an event it matches (as the
real server refuses a whole batch for one bad event). Real decisions are tested against the real
``pyagent server`` in tests/agent/plugins.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    hashes: list[str]
    authorization: str | None
    status: int
    gzip_bytes: int


@dataclass
class CollectorState:
    url: str = ""
    token: str | None = None
    fail_next: int = 0
    store_then_fail: int = 0
    redirect: bool = False
    refuse: Callable[[dict[str, Any]], bool] | None = None
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hashes_received(self) -> list[str]:
        with self.lock:
            return [h for r in self.requests for h in r.hashes]


@contextmanager
def run_collector(token: str | None = None) -> Iterator[CollectorState]:
    """The endpoint on a free loopback port; ``state.url`` is the service url (POST ``/logs``)."""
    state = CollectorState(token=token)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            auth = self.headers.get("Authorization")
            events = (
                json.loads(gzip.decompress(raw)) if self.headers.get("Content-Encoding") == "gzip" else []
            )
            hashes = [str(e.get("pyagent", {}).get("hash")) for e in events]
            with state.lock:
                status = self._decide(events, auth)
                state.requests.append(Received(hashes, auth, status, len(raw)))
            body = b'{"code": "invalid_parameter", "message": "event refused by the test"}'
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the agent was SIGKILLed
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", state.url + "/elsewhere")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def _decide(self, events: list[dict[str, Any]], auth: str | None) -> int:
            if state.token is not None and auth != f"Bearer {state.token}":
                return 401
            if self.path != "/logs" or not events:
                return 400
            if state.redirect:
                return 307
            if state.fail_next > 0:
                state.fail_next -= 1
                return 500
            if state.refuse is not None and any(state.refuse(e) for e in events):
                return 400
            for event in events:  # idempotent: a re-sent event is not stored twice
                state.stored.setdefault(event["pyagent"]["hash"], event)
            if state.store_then_fail > 0:
                state.store_then_fail -= 1
                return 500
            return 200

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
