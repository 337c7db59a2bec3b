"""What a reader's question may cost: every read is stopped past ``query_timeout_seconds`` (503 over
HTTP, on SQLite and PostgreSQL), and the history costs one sort of its decisions and instants, not a
join of every instant with every decision; its counts stay those of the summary at each instant."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Connection, text
from starlette.testclient import TestClient

from pyagent.errors import InvalidInputError
from pyagent.server.app import create_app
from pyagent.server.auth import new_token, token_hash
from pyagent.server.settings import ServerSettings, load_settings
from pyagent.server.store import Store
from pyagent.server.store import deadline as deadline_module
from pyagent.server.store import history as history_module
from pyagent.server.store.base import NO_ORGANIZATION, DecisionRow, Organization, QueryTimeout
from pyagent.server.store.history import history_steps
from pyagent.server.store.sql import SqlStore

START = datetime(2026, 11, 1, tzinfo=UTC)
#: Seconds of work that a bound of a fraction of a second must stop (without one: a failure, not a hang).
_SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) "
    "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(8)",
}


def _slow(conn: Connection) -> None:
    conn.execute(text(_SLOW[conn.dialect.name]))


def test_a_read_past_its_bound_is_stopped_and_the_connection_is_clean_after(store: Store) -> None:
    sql = cast(SqlStore, store)
    sql.query_timeout_seconds = 0.3
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as stopped, sql._tx(read=True) as conn:
        _slow(conn)
    assert time.monotonic() - started < 4
    assert str(stopped.value) == "the query took longer than 0.3 s and was stopped"
    sql.query_timeout_seconds = 30  # the bound went with its transaction (pooled connections are reused)
    with sql._tx(read=True) as conn:
        quick = "SELECT pg_sleep(0.6)" if sql.dialect == "postgresql" else "SELECT 1"
        conn.execute(text(quick))
        if sql.dialect == "sqlite":
            big = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT 1"
            conn.execute(text(big))


def test_writes_are_not_bounded(store: Store) -> None:
    """An ingest or a migration is not a reader's question: it runs to its end."""
    sql = cast(SqlStore, store)
    sql.query_timeout_seconds = 0.1
    work = {  # well past the bound: a read would be stopped
        "postgresql": "SELECT pg_sleep(0.4), 3000000",
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
        "SELECT 0, count(*) FROM c",
    }
    started = time.monotonic()
    with sql._tx() as conn:
        assert conn.execute(text(work[sql.dialect])).one()[1] == 3_000_000
    assert time.monotonic() - started > 0.1  # (it did outlast the bound)


def test_a_question_too_long_is_a_503_that_says_so(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_history(conn: Connection, *_args: Any, **_kwargs: Any) -> list[Any]:
        _slow(conn)
        return []

    monkeypatch.setattr(history_module, "history", slow_history)
    reader = new_token()
    store.add_token("reader", "reader", token_hash(reader))
    headers = {"Authorization": f"Bearer {reader}"}
    message = (
        "the query took longer than 0.3 s and was stopped: ask for less (a shorter range, a wider step, "
        "a narrower filter)"
    )
    with TestClient(create_app(ServerSettings(query_timeout_seconds=0.3), store)) as client:
        started = time.monotonic()
        params = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-05T00:00:00Z", "step": "50m"}
        answer = client.get("/api/v1/history", params=params, headers=headers)
        assert (answer.status_code, answer.json()) == (503, {"code": "query_timeout", "message": message})
        page = client.get("/", headers=headers)  # the dashboard's trend: the same, as a page
        assert (page.status_code, f'<p class="error" role="alert">{message}</p>' in page.text) == (503, True)
        assert time.monotonic() - started < 8
        assert client.get("/api/v1/summary", headers=headers).status_code == 200  # the others still answer


@pytest.mark.parametrize(
    ("key", "default", "given"), [("query_timeout_seconds", 30, 5), ("reader_queries", 4, 16)]
)
def test_the_bounds_are_settings(tmp_path: Path, key: str, default: int, given: int) -> None:
    """How long a reader's question may run, and how many run at once (``test_reader_slots.py``)."""
    config = tmp_path / "server.toml"
    assert getattr(ServerSettings(), key) == default
    config.write_text(f"[server]\n{key} = {given}\n")
    assert getattr(load_settings(config), key) == given
    config.write_text(f"[server]\n{key} = 0\n")
    with pytest.raises(InvalidInputError) as refused:
        load_settings(config)
    assert str(refused.value) == f"{config}: server.{key}: must be an integer of at least 1"


# the history's cost and its counts -------------------------------------------------------------


def _row(n: int, device: str, at: datetime, verdict: str, organization: str | None = "eu") -> DecisionRow:
    return DecisionRow(
        decision_id=f"d-{n:06d}", decided_at=at, device_id=device, sender=device, path="pyagent/decision",
        allow=verdict == "compliant", organization=organization, platform="android", result=None,
        report_digest=None, bundles=None, chain=None, verdict=verdict,
    )  # fmt: skip


def test_the_history_is_not_a_join_of_every_instant_with_every_decision(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,000 decisions over 34 days at 999 instants: the join took about 2,000 x 999 steps of
    SQLite's machine, where a sort of decisions and instants takes a few per row. SQLite's progress
    handler (the time bound) looks at the clock every 10,000 instructions: those looks count them."""
    verdicts = ("compliant", "non_compliant")
    rows = [
        _row(n, f"dev-{n % 200:03d}", START + timedelta(minutes=24 * n + n % 7), verdicts[n % 2])
        for n in range(2000)
    ]
    sqlite_store.ingest(rows, {})
    looks = 0
    clock = time.monotonic

    class Counting:
        @staticmethod
        def monotonic() -> float:
            nonlocal looks
            looks += 1
            return clock()

    monkeypatch.setattr(deadline_module, "time", Counting)
    steps = history_steps(START, START + 999 * timedelta(minutes=49), timedelta(minutes=49), 1000)
    assert len(steps) == 1000
    points = sqlite_store.history(steps, organization=None, stale_after=timedelta(hours=24))
    assert points[-1]["devices"] == 200
    assert looks < 400, f"{looks * 10_000} SQLite instructions"  # the join: 1,715 looks; this: 109


@pytest.fixture
def random_fleet(store: Store) -> Iterator[tuple[Store, list[datetime]]]:
    """Decisions at random instants (ties on one instant included), some without organisation, and
    the instants to ask at: a grid, each decision's instant, the instant it turns stale, either side."""
    rng = random.Random(20230315)
    rows, instants = [], set()
    for n in range(400):
        at = START + timedelta(
            minutes=rng.randrange(0, 6 * 24 * 60), microseconds=rng.choice([0, 0, 999_999])
        )
        device = f"dev-{rng.randrange(40):02d}"
        if n % 9 == 8:  # a tie: a second decision of the device at the instant of its previous one
            at, device = rows[-1].decided_at, rows[-1].device_id
        verdict = rng.choice(["compliant", "non_compliant", "invalid", "undecided"])
        rows.append(_row(n, device, at, verdict, None if device.endswith("7") else "eu"))
        for instant in (at, at + STALE):
            instants.update(
                {instant, instant - timedelta(microseconds=1), instant + timedelta(microseconds=1)}
            )
    store.ingest(rows, {})
    grid = history_steps(START - timedelta(days=1), START + timedelta(days=8), timedelta(hours=5), 1000)
    yield store, sorted({*rng.sample(sorted(instants), 150), *grid})


STALE = timedelta(hours=20)
KEYS = ("devices", "compliant", "non_compliant", "invalid", "undecided", "stale")


@pytest.mark.parametrize("organization", [None, "eu", NO_ORGANIZATION])
def test_the_history_counts_what_the_summary_counts_at_each_instant(
    random_fleet: tuple[Store, list[datetime]], organization: Organization
) -> None:
    store, steps = random_fleet
    points = store.history(steps, organization=organization, stale_after=STALE)
    now = START + timedelta(days=30)
    for step, point in zip(steps, points, strict=True):
        summary = store.summary(now=now, at=step, organization=organization, stale_after=STALE)
        assert {k: point[k] for k in KEYS} == {k: summary[k] for k in KEYS}, step
    assert any(p["stale"] for p in points) and any(p["invalid"] for p in points)


def test_history_steps_count_the_end_point_in_their_limit() -> None:
    """A grid that stops short of its end gets the end as one more point, within the limit."""
    start = datetime(2023, 3, 16, 6, tzinfo=UTC)
    exact = history_steps(start, start + timedelta(seconds=998.5), timedelta(seconds=1), 1000)
    assert (len(exact), exact[-2:]) == (
        1000,
        [start + timedelta(seconds=998), start + timedelta(seconds=998.5)],
    )
    assert history_steps(start, start + timedelta(seconds=999), timedelta(seconds=1), 1000)[-1] == (
        start + timedelta(seconds=999)
    )
    with pytest.raises(ValueError, match=r"^1001 points asked, at most 1000"):
        history_steps(start, start + timedelta(seconds=999.5), timedelta(seconds=1), 1000)
