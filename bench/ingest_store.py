"""What the server benchmark reads off the database and the machine: the database's size by table,
row counts, the CPU of PostgreSQL and of the machine, the storage per event and per device per day,
and the server's own ingest work step by step (its functions called in this process, one thread,
no HTTP and no profiler: where a batch's CPU goes)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from isal import isal_zlib
from sqlalchemy import func, select, text

from bench.ingest_client import process_cpu_s
from pyagent.server.auth import token_hash
from pyagent.server.body import BodyLimits, _Gunzip
from pyagent.server.lazy_events import ReportCache, decode_batch
from pyagent.server.store.schema import decisions, devices, reports
from pyagent.server.store.sql import SqlStore

__all__ = ["counts", "db_bytes", "machine_busy", "postgres_cpu_s", "server_steps", "storage"]


def _sqlite_bytes(url: str) -> dict[str, Any]:
    """The SQLite file after a WAL checkpoint (the WAL, then empty, is counted too), by table."""
    path = url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute(
            "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name "
            "GROUP BY m.tbl_name"
        ).fetchall()
    wal = Path(f"{path}-wal")
    total = os.path.getsize(path) + (wal.stat().st_size if wal.exists() else 0)
    return {"total": total, "tables": _group({str(name): int(size) for name, size in rows})}


def _postgres_bytes(store: SqlStore) -> dict[str, Any]:
    """``pg_database_size``, and ``pg_total_relation_size`` (heap, indexes, TOAST) by table, the
    history's daily partitions summed as ``decisions``."""
    query = text(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
    )
    with store.engine.connect() as conn:
        total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        rows = conn.execute(query).all()
    return {"total": total, "tables": _group({str(name): int(size) for name, size in rows})}


def _group(sizes: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, size in sizes.items():
        key = "decisions" if name.startswith("decisions") else name
        key = key if key in ("decisions", "reports", "devices", "bundle_files") else "other"
        out[key] = out.get(key, 0) + size
    return out


def db_bytes(kind: str, store: SqlStore, url: str) -> dict[str, Any]:
    return _sqlite_bytes(url) if kind == "sqlite" else _postgres_bytes(store)


def counts(store: SqlStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in (("decisions", decisions), ("reports", reports), ("devices", devices))
        }


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process (the cluster: postmaster, backends, workers), with
    the backends that have exited (counted in the postmaster's children's time)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as handle:
                if handle.read().strip() != b"postgres":
                    continue
        except OSError:
            continue
        total += process_cpu_s(int(entry.name), children=True)
    return total


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far."""
    with open("/proc/stat", "rb") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def storage(
    before: dict[str, Any], after: dict[str, Any], stored: dict[str, int], events: int, change_every: int
) -> dict[str, Any]:
    """Bytes per event and per device per day (24 hourly decisions), measured from the growth, and
    split: a history row (with its indexes) per event, a stored report per distinct report."""
    events = max(1, events)
    grown = {k: after["tables"].get(k, 0) - before["tables"].get(k, 0) for k in after["tables"]}
    per_event = (after["total"] - before["total"]) / events
    decision_row = grown.get("decisions", 0) / events
    report_row = grown.get("reports", 0) / max(1, stored["reports"])
    steady = 1 / change_every if change_every else 0.0
    return {
        "before_bytes": before["total"],
        "after_bytes": after["total"],
        "tables_grown_bytes": grown,
        "bytes_per_event": round(per_event),
        "per_device_per_day_bytes": round(per_event * 24),
        "decision_row_bytes": round(decision_row),
        "report_bytes": round(report_row),
        "distinct_reports_share": round(stored["reports"] / events, 4),
        "new_inventory_share_steady": round(steady, 4),
        "per_device_per_day_if_reports_dedup_bytes": round(24 * (decision_row + steady * report_row)),
    }


@contextlib.contextmanager
def _timed(into: dict[str, float], step: str) -> Iterator[None]:
    start = time.thread_time()  # this thread's CPU: other work on the machine does not count
    try:
        yield
    finally:
        into[step] = into.get(step, 0.0) + time.thread_time() - start


def server_steps(
    store: SqlStore, token: str, warm: Sequence[bytes], batches: Sequence[bytes]
) -> dict[str, Any]:
    """The work of ``POST /logs`` for each of ``batches`` (gzip bodies), by step, as the server's
    functions do it, in this thread: microseconds of this thread's CPU per event (PostgreSQL's own
    work and the waits for the disk do not count). ``store`` is a fresh database with the bundle
    published; ``warm`` (one run of the fleet: every device's first report) is stored first,
    untimed, so that the measured batches meet the known and the changed inventories of a live
    fleet."""
    limits = BodyLimits()
    cache = ReportCache()
    spent: dict[str, float] = {}
    events = 0
    secret = token_hash(token)
    for raw in warm:
        lazy = decode_batch(_Gunzip(limits.max_decoded).feed(raw), cache)
        store.ingest(lazy.batch.rows, lazy.batch.reports)
        lazy.committed()
    hits, misses = cache.hits, cache.misses
    for raw in batches:
        with _timed(spent, "lookups"):
            store.grant_for(secret)
            store.bundle_names()
        with _timed(spent, "gunzip"):
            body = _Gunzip(limits.max_decoded).feed(raw)
        with _timed(spent, "decode"):
            lazy = decode_batch(body, cache)
        with _timed(spent, "compress"):
            for content in lazy.batch.reports.values():
                isal_zlib.compress(content, 1)
        with _timed(spent, "ingest"):
            store.ingest(lazy.batch.rows, lazy.batch.reports)
        lazy.committed()
        events += len(lazy.batch.rows) + lazy.batch.ignored
    out = {
        "gunzip (read_body, ISA-L)": spent["gunzip"],
        "decode_batch: events decoded, known reports looked up, new ones parsed, rows": spent["decode"],
        "report compression (zlib format, ISA-L level 1, in SqlStore.ingest)": spent["compress"],
        "SQL: statements, driver, commit (rest of SqlStore.ingest)": spent["ingest"] - spent["compress"],
        "token and bundle-name lookups (2 transactions per request)": spent["lookups"],
    }
    per_event = {step: round(seconds / max(1, events) * 1e6, 1) for step, seconds in out.items()}
    looked_up = cache.hits - hits + cache.misses - misses
    return {
        "events": events,
        "known_report_share": round((cache.hits - hits) / max(1, looked_up), 3),
        "us_per_event": per_event,
        "total_us_per_event": round(sum(per_event.values()), 1),
    }
