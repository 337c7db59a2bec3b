"""A tiny bundle service for faults only (never for decisions): down with a 503, or a huge bundle
sent at a crawl, so the agent can be killed in the middle of a download."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

HUGE = 32 * 1024 * 1024
DRIP_CHUNK = 16 * 1024
DRIP_PAUSE = 0.02
DOWN_MESSAGE = "bundle service down for maintenance"


@dataclass
class Drip:
    """A tiny bundle service: ``down`` answers 503; ``drip`` starts a 32 MiB answer, sent at a crawl."""

    url: str = ""
    mode: str = "down"
    requests: int = 0
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


@contextlib.contextmanager
def drip_server() -> Iterator[Drip]:
    state = Drip()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            if state.mode != "drip":
                message = json.dumps({"code": "unavailable", "message": DOWN_MESSAGE}).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(HUGE))
            self.send_header("ETag", '"huge"')
            self.end_headers()
            chunk = b"\x1f\x8b" + bytes(DRIP_CHUNK - 2)
            with contextlib.suppress(OSError):  # the agent is killed while it reads
                for _ in range(HUGE // DRIP_CHUNK):
                    if state.stop.is_set():
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    state.sent += len(chunk)
                    state.stop.wait(DRIP_PAUSE)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
