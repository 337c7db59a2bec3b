"""Long polling as OPA keeps it (``download.go``): only a bundle's answer (200) says whether the service
long polls; a 304 or an error says nothing of it. A fault-injecting HTTP server (never deciding) answers
a scripted sequence and records each request's ``Prefer`` header."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyagent.agent.http import ServiceClient
from pyagent.agent.plugins.bundle import LONG_POLL_TYPE, BundlePlugin
from pyagent.agent.plugins.bundledir import BundleDir
from pyagent.agent.plugins.status import bundle_state
from pyagent.config.opa import BundleSource, Polling, Service


@contextmanager
def scripted(answers: list[tuple[int, dict[str, str], bytes]]) -> Iterator[tuple[str, list[str | None]]]:
    """A server that answers ``answers`` in turn (the last one again after), recording ``Prefer``."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Prefer"))
            status, headers, body = answers[min(len(seen), len(answers)) - 1]
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_one_error_or_a_bare_304_does_not_end_long_polling(tmp_path: Path) -> None:
    not_a_bundle = (200, {"Content-Type": LONG_POLL_TYPE, "ETag": '"e1"'}, b"not gzip")
    answers = [
        not_a_bundle,  # a long-poll answer (refused as a bundle, but it says the service long polls)
        (500, {}, b"busy"),
        (304, {}, b""),  # no Content-Type
        (200, {"Content-Type": "application/gzip", "ETag": '"e2"'}, b"not gzip"),  # no long poll here
        (304, {}, b""),
    ]
    with scripted(answers) as (url, seen):
        source = BundleSource(
            "pyagent", "s", "bundles/pyagent", polling=Polling(1, 2, long_polling_timeout=5)
        )
        plugin = BundlePlugin(source, ServiceClient(Service("s", url)), BundleDir(tmp_path, "pyagent"),
                              verification=None)  # fmt: skip
        plugin.start()
        states = []
        for _ in range(5):
            plugin.step()
            states.append(bundle_state(plugin))
    assert seen == ["wait=5", "wait=5", "wait=5", "wait=5", None]
    # OPA's plug-in states: an answer that is no bundle and a 500 are errors, a 304 is not
    assert states == ["ERROR", "ERROR", "NOT_READY", "ERROR", "NOT_READY"]
