"""A fake HTTP server for fault injection only (slow, truncated, 5xx, no result): never for decisions."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class Fault:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0
    declared_length: int | None = None  # a Content-Length larger than the body: a truncated response
    headers: tuple[tuple[str, str], ...] = ()  # more headers, e.g. a redirect's Location
    drip: float = 0.0  # seconds between the body's bytes: a body fed one byte at a time
    stream: int = 0  # bytes of JSON whitespace sent after the body, with no Content-Length: a huge answer
    content_type: str | None = "application/json"  # None: no Content-Type header


@contextlib.contextmanager
def fault_server(
    *faults: Fault, seen: list[Message] | None = None, paths: list[str] | None = None
) -> Iterator[str]:
    """Serve ``faults`` in turn (the last one again after) to GET and POST requests on a free
    loopback port, appending each request's headers to ``seen`` and its path to ``paths`` when given;
    yields the base URL."""
    served = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.do_POST()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            with lock:
                fault = faults[min(served[0], len(faults) - 1)]
                served[0] += 1
                if seen is not None:
                    seen.append(self.headers)
                if paths is not None:
                    paths.append(self.path)
            if fault.delay:
                time.sleep(fault.delay)
            self.send_response(fault.status)
            if fault.content_type is not None:
                self.send_header("Content-Type", fault.content_type)
            for name, value in fault.headers:
                self.send_header(name, value)
            if not fault.stream:
                self.send_header("Content-Length", str(fault.declared_length or len(fault.body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                if fault.drip:
                    for byte in fault.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(fault.drip)
                else:
                    self.wfile.write(fault.body)
                chunk = b" " * 65536
                for _ in range(fault.stream // len(chunk)):
                    self.wfile.write(chunk)
                self.wfile.flush()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
