"""Readers' questions take at most ``reader_queries`` threads at once per process: readers, however many,
never hold the threads and database connections that ingest and ``/health`` need (an audit made
``/health`` a 503 and an upload wait 45 s with 150 history queries at once); a reader that waits for its
turn past ``query_timeout_seconds`` is answered 503 ``busy``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings
from pyagent.server.store import Store
from tests.server.conftest import decision_event


def _headers(store: Store, role: str) -> dict[str, str]:
    token = new_token()
    store.add_token(f"{role}-1", role, token_hash(token))
    return {"Authorization": f"Bearer {token}"}


def test_readers_past_their_slots_wait_then_get_busy_while_ingest_and_health_answer(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, agent = _headers(sqlite_store, "reader"), _headers(sqlite_store, "agent")
    held, release = threading.Event(), threading.Event()
    summary = sqlite_store.summary

    def slow_summary(*args: Any, **kwargs: Any) -> Any:
        held.set()
        assert release.wait(20)
        return summary(*args, **kwargs)

    monkeypatch.setattr(sqlite_store, "summary", slow_summary)
    settings = ServerSettings(reader_queries=1, query_timeout_seconds=1)
    with TestClient(create_app(settings, sqlite_store)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.get, "/api/v1/summary", headers=reader)
        assert held.wait(20)
        started = time.monotonic()
        busy = client.get("/api/v1/devices", headers=reader)
        waited = time.monotonic() - started
        assert (busy.status_code, busy.json(), busy.headers["retry-after"]) == (
            503,
            {
                "code": "busy",
                "message": "all 1 reader query slots of this server process are busy; ask again shortly",
            },
            "5",
        )
        assert 0.9 < waited < 10
        assert client.get("/health").status_code == 200
        logged = client.post("/logs", json=[decision_event("d-1")], headers=agent)
        assert (logged.status_code, logged.json()["stored"]) == (200, 1)
        release.set()
        assert first.result(20).status_code == 200
        assert (
            client.get("/api/v1/devices", headers=reader).json()["devices"][0]["device_id"]
            == "fr-brussels-0042"
        )
