"""Server test fixtures: stores on SQLite and on a real PostgreSQL (one server per session, one fresh
database per test), the app in-process (``fleet``), and sample decision-log events made from the shipped
example reports."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyagent.server.app import create_app
from pyagent.server.store import Store, open_store
from pyagent.server.store.base import BundleFile, NewRevision
from pyagent.timeutil import is_rfc3339
from tests.helpers.postgres import RunningPostgres, run_postgres
from tests.server.inprocess import LIMITS, Fleet

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "reports"
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPostgres]:
    with run_postgres(tmp_path_factory.mktemp("postgres")) as running:
        yield running


def fresh_db_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    running: RunningPostgres = request.getfixturevalue("postgres")
    return running.create_database(f"t{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: the store suite runs on both."""
    return fresh_db_url(str(request.param), tmp_path, request)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'server.db'}")
    yield opened
    opened.close()


@pytest.fixture
def fleet(sqlite_store: Store) -> Iterator[Fleet]:
    """The app in-process on SQLite, one token per role, bundle ``pyagent`` at revision ``r1``."""
    sqlite_store.publish(
        NewRevision(
            "pyagent",
            "r1",
            None,
            False,
            "test",
            [BundleFile("rego", '"etag-r1"', b"rego-r1"), BundleFile("wasm", '"etag-r1w"', b"wasm-r1")],
        )
    )
    with TestClient(create_app(LIMITS, sqlite_store)) as client:
        yield Fleet(sqlite_store, client)


def example_report(name: str = "eu-commission-personal-enrolled-tiktok") -> dict[str, Any]:
    report: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return report


def decision_event(
    decision_id: str,
    *,
    at: str = "2023-03-16T09:30:00Z",
    report: dict[str, Any] | None = None,
    device_id: str | None = None,
    allow: bool = False,
    sender: str = "opa-test",
    bundles: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A decision-log event shaped as the pinned OPA uploads it for ``pyagent/decision``."""
    body = json.loads(json.dumps(report or example_report()))
    if device_id is not None:
        body["device"]["id"] = device_id
    violations = [] if allow else [{"rule": "eu-commission/tiktok", "ban": "tiktok"}]
    event: dict[str, Any] = {
        "decision_id": decision_id,
        "labels": {"id": sender, "version": "1.22.4"},
        "path": "pyagent/decision",
        "input": {"at": at, "report": body},
        "result": {"allow": allow, "organization": "eu-commission", "violations": violations, "errors": []},
        "timestamp": at if is_rfc3339(at) else "2023-03-16T09:30:01.5Z",  # OPA stamps when it decided
        "metrics": {"timer_rego_query_eval_ns": 1000},
    }
    if bundles is not None:
        event["bundles"] = bundles
    return event
