"""The server app in-process for tests: Starlette's test client over a store, with one token per role.
The ``fleet`` fixture (``conftest.py``) gives one on SQLite with a published revision ``r1``."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

from starlette.testclient import TestClient

from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store

MiB = 1024 * 1024
LIMITS = ServerSettings(max_body_bytes=8 * MiB, max_decoded_bytes=16 * MiB)


class Fleet:
    """A server app with one token per role."""

    def __init__(self, store: Store, client: TestClient) -> None:
        self.store = store
        self.client = client
        self.tokens = {}
        for role in ("agent", "reader", "admin"):
            secret = new_token()
            store.add_token(f"{role}-token", role, token_hash(secret))
            self.tokens[role] = secret

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post_logs(self, events: Any, *, gzip_it: bool = True, **headers: str) -> Any:
        body = json.dumps(events).encode()
        sent = {**self.auth("agent"), "Content-Type": "application/json", **headers}
        if gzip_it:
            body = gzip.compress(body)
            sent.setdefault("Content-Encoding", "gzip")
        return self.client.post("/logs", content=body, headers=sent)

    def history(self, device: str = "fr-brussels-0042") -> list[str]:
        state = self.store.device(device, history=100)
        return [] if state is None else [h["decision_id"] for h in state.history]


def held_after_first_read(fleet: Fleet, monkeypatch: Any) -> threading.Event:
    """An event set once a bundle request has read the store (``bundle_head``): a long poll that read
    it is held from then on, so that what a test does next happens during the wait."""
    held = threading.Event()
    head = fleet.store.bundle_head

    def read(name: str, target: str) -> Any:
        found = head(name, target)
        held.set()
        return found

    monkeypatch.setattr(fleet.store, "bundle_head", read)
    return held
