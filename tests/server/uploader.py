"""A decision-log client for the durability tests: uploads batches until told to stop and keeps the
ids of every event the server acknowledged with a 2xx."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.server.conftest import decision_event


@dataclass
class Uploader:
    url: str
    token: str
    prefix: str
    batch_size: int = 50
    acknowledged: list[list[str]] = field(default_factory=list)
    attempted: list[list[str]] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def batches(self) -> int:
        return len(self.attempted)

    def run(self, max_batches: int = 10_000) -> None:
        parts = urlsplit(self.url)
        for number in range(max_batches):
            if self.stop.is_set():
                return
            ids = [f"{self.prefix}-{number}-{i}" for i in range(self.batch_size)]
            events = [decision_event(d, device_id=f"{self.prefix}-dev-{i}") for i, d in enumerate(ids)]
            body = gzip.compress(json.dumps(events).encode())
            self.attempted.append(ids)
            try:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
                conn.request("POST", "/logs", body, {
                    "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                })  # fmt: skip
                status = conn.getresponse().status
                conn.close()
            except OSError:
                self.failures += 1
                continue
            if 200 <= status < 300:
                self.acknowledged.append(ids)
            else:
                self.failures += 1

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread
