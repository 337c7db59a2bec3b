"""The fleet views at scale (``python -m bench.fleet_views``; ``make bench`` runs it too): the summary
over 100k devices' current states, the summary as of a past instant over 1M history rows, the
dashboard's device list and overview, on SQLite and on PostgreSQL.

The history is written straight into the store (``Store.ingest``): this measures reads, the ingest
benchmark (:mod:`bench.ingest`) measures writes. Devices decide ``per_device`` times an hour apart;
verdicts, organisations, platforms and violated bans are drawn with a fixed seed. On PostgreSQL the
table of current states is then vacuumed, as autovacuum does in a deployment after such a burst
(:func:`_autovacuum_devices`); the history is left as written. The dashboard is
asked over HTTP of a real ``pyagent server run`` process with a reader's bearer token.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.measure import remeasured
from pyagent.server.store import open_store
from pyagent.server.store.base import DecisionRow, Store
from pyagent.server.store.sql import SqlStore

__all__ = ["FULL", "SMOKE", "ViewsPlan", "measure", "views_goals", "views_markdown"]

ORGS = ("eu-commission", "eu-council", "eeas", "eu-parliament", "us-federal", "india")
PLATFORMS = ("android", "ios", "windows", "macos", "linux")
START = datetime(2023, 3, 1, tzinfo=UTC)
TARGETS_MS = {"summary_now": 50.0, "summary_at": 500.0, "dashboard_devices": 300.0}


@dataclass(frozen=True)
class ViewsPlan:
    devices: int = 100_000
    per_device: int = 10
    runs: int = 15
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    seed: int = 15


FULL = ViewsPlan()
SMOKE = ViewsPlan(devices=300, per_device=3, runs=3)


def _log(message: str) -> None:
    print(f"[bench fleet views] {message}", file=sys.stderr, flush=True)


def fill(store: Store, plan: ViewsPlan) -> int:
    """``devices * per_device`` decisions, hour by hour; returns the count written."""
    rng = random.Random(plan.seed)
    written, batch = 0, []
    for hour in range(plan.per_device):
        for index in range(plan.devices):
            draw = rng.random()
            verdict = "compliant" if draw < 0.8 else "non_compliant" if draw < 0.97 else "invalid"
            device = f"{ORGS[index % len(ORGS)]}-{index:07d}"
            batch.append(
                DecisionRow(
                    decision_id=f"{hour}-{index}",
                    decided_at=START + timedelta(hours=hour, seconds=index % 3600),
                    device_id=device,
                    sender=device,
                    path="pyagent/decision",
                    allow=verdict == "compliant",
                    organization=ORGS[index % len(ORGS)],
                    platform=PLATFORMS[index % len(PLATFORMS)],
                    result='{"allow": true}',
                    report_digest=None,
                    bundles=None,
                    chain=None,
                    verdict=verdict,
                    bans="|tiktok|" if verdict == "non_compliant" else "",
                )
            )
            if len(batch) >= 5_000:
                written += store.ingest(batch, {}).stored
                batch = []
    if batch:
        written += store.ingest(batch, {}).stored
    return written


def _median_ms(call: Callable[[], Any], runs: int) -> dict[str, float]:
    call()  # warm the caches the way a live server has them
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2), "runs": runs}


def _http_ms(url: str, path: str, token: str, runs: int) -> dict[str, float]:
    host, _, port = url.removeprefix("http://").partition(":")

    def get() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")

    return _median_ms(get, runs)


def _autovacuum_devices(store: Store) -> float:
    """``VACUUM (ANALYZE) devices``: what autovacuum does to a deployment's table of current states
    within a minute (``autovacuum_naptime``) of a burst of updates, done at once here because the bench
    asks for the summary the moment its burst ends. Each ingest rewrites a device's row (an update in
    PostgreSQL is a new row version), so after 1,000,000 decisions the table holds 900,000 dead
    versions that nothing has vacuumed yet, and its pages are not marked all-visible: the summary's
    index-only scan would read the heap. Returns the seconds taken."""
    assert isinstance(store, SqlStore)
    started = time.perf_counter()
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) devices")
    return time.perf_counter() - started


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'views.db'}"
        return
    from tests.helpers.postgres import run_postgres

    with run_postgres(workdir) as postgres:
        yield postgres.create_database("views")


def measure_one(kind: str, plan: ViewsPlan, workdir: Path) -> dict[str, Any]:
    from tests.helpers.pyagent_server import add_token, run_server

    with _database(kind, workdir) as db:
        store = open_store(db)
        started = time.perf_counter()
        written = fill(store, plan)
        took = time.perf_counter() - started
        _log(f"{kind}: {written:,} decisions of {plan.devices:,} devices in {took:.0f} s")
        vacuumed = _autovacuum_devices(store) if kind == "postgresql" else None
        if vacuumed is not None:
            _log(f"{kind}: devices vacuumed and analyzed in {vacuumed:.1f} s")
        now = START + timedelta(hours=plan.per_device)
        at = START + timedelta(hours=plan.per_device // 2)
        stale = timedelta(hours=24)
        result: dict[str, Any] = {
            "decisions": written,
            **({"vacuum_devices_s": round(vacuumed, 2)} if vacuumed is not None else {}),
            "summary_now": _median_ms(
                lambda: store.summary(now=now, at=None, organization=None, stale_after=stale), plan.runs
            ),
            "summary_at": _median_ms(
                lambda: store.summary(now=now, at=at, organization=None, stale_after=stale), plan.runs
            ),
        }
        check = store.summary(now=now, at=None, organization=None, stale_after=stale)
        if check["devices"] != plan.devices:
            raise RuntimeError(f"{kind}: the summary counts {check['devices']} devices, not {plan.devices}")
        token = add_token(db, "bench-reader", "reader")
        store.close()
        with run_server(workdir, db) as server:
            runs = max(3, plan.runs // 3)
            result["dashboard_devices"] = _http_ms(server.url, "/devices", token, plan.runs)
            result["api_devices"] = _http_ms(server.url, "/api/v1/devices", token, plan.runs)
            result["dashboard_overview"] = _http_ms(server.url, f"/?at={at:%Y-%m-%dT%H:%M:%SZ}", token, runs)
        return result


def measure(plan: ViewsPlan) -> dict[str, Any]:
    results: dict[str, Any] = {"plan": asdict(plan)}
    for kind in plan.databases:
        with tempfile.TemporaryDirectory(prefix=f"pyagent-views-{kind}-") as tmp:
            try:
                results[kind] = measure_one(kind, plan, Path(tmp))
            except (RuntimeError, OSError) as err:
                results[kind] = {"skipped": f"{type(err).__name__}: {err}"}
                _log(f"{kind}: skipped: {err}")
    return results


def views_goals(results: dict[str, Any]) -> list[tuple[str, str, float | None, str, float]]:
    """(id, text, value, op, target) of each goal; a database that was skipped has no value."""
    found = results.get("server_views", {})
    devices = found.get("plan", {}).get("devices", 0)
    decisions = devices * found.get("plan", {}).get("per_device", 0)
    texts = {
        "summary_now": f"summary of {devices:,} devices' current state: median ms",
        "summary_at": f"summary ?at= over {decisions:,} history rows: median ms",
        "dashboard_devices": f"dashboard device list, first page, {devices:,} devices: median ms",
    }
    rows = []
    for kind in ("sqlite", "postgresql"):
        run = found.get(kind, {})
        for key, text in texts.items():
            value = run.get(key, {}).get("median_ms") if isinstance(run.get(key), dict) else None
            rows.append((f"server_{key}_{kind}", f"{text} ({kind})", value, "<=", TARGETS_MS[key]))
    return rows


def _vacuum_note(run: dict[str, Any]) -> list[str]:
    if "vacuum_devices_s" not in run:
        return []
    return [
        "",
        "On PostgreSQL the table of current states is vacuumed after the fill (`VACUUM (ANALYZE) devices`, "
        f"{run['vacuum_devices_s']} s), as autovacuum does within about a minute of such a burst (migration "
        "0008 has it visit the table after 1% of its rows changed); the history is left as written. "
        "Before that vacuum the summary reads every dead row version of the burst.",
    ]


def views_markdown(results: dict[str, Any]) -> list[str]:
    """The section of ``docs/benchmarks.md``."""
    found = results.get("server_views")
    if not isinstance(found, dict) or "plan" not in found:
        return []
    plan = found["plan"]
    keys = ("summary_now", "summary_at", "api_devices", "dashboard_devices", "dashboard_overview")
    lines = [
        "## Server: fleet views at scale",
        "",
        remeasured(found, "fleet-views"),
        "",
        f"{plan['devices']:,} devices, {plan['per_device']} decisions each an hour apart "
        f"({plan['devices'] * plan['per_device']:,} history rows), written straight into the store; "
        "summaries asked of the store (median of "
        f"{plan['runs']}), pages over HTTP of a real `pyagent server run` with a reader token.",
        *_vacuum_note(found.get("postgresql", {})),
        "",
        "| database | " + " | ".join(f"{k} ms" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for kind in ("sqlite", "postgresql"):
        run = found.get(kind, {})
        if "skipped" in run:
            lines.append(f"| {kind} | skipped: {run['skipped']} |" + " |" * (len(keys) - 1))
            continue
        cells = [str(run.get(k, {}).get("median_ms", "-")) for k in keys]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy sizes (seconds); the numbers mean nothing")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    if args.database:
        plan = ViewsPlan(**{**asdict(plan), "databases": tuple(args.database)})
    results = {"server_views": measure(plan)}
    print(json.dumps(results, indent=2))
    for _id, text, value, op, target in views_goals(results):
        verdict = "holds" if value is not None and value <= target else "FAILS"
        print(f"{verdict}: {text}: {value} (goal {op} {target})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
