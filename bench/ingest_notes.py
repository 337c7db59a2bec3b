"""What stands in the way of the server goals, for ``docs/benchmarks.md``: the numbers of this run,
and where the server's time goes (the step table of the run, and a cProfile of the server process
taken with ``python -m bench.ingest --profile DIR``, whose figures are quoted as measured once)."""

from __future__ import annotations

from typing import Any

from bench.ingest_report import NAMES, goal_holds, ingest_goals, runs

__all__ = ["ingest_notes"]

PROFILE = """\
Where the time goes, measured once with `python -m bench.ingest --events 10000 --profile DIR` (the
server process under cProfile; `bench/ingest_profile.py`):

- On the CPU clock, PostgreSQL: 17.4 s of worker-thread CPU and 2.0 s on the event loop for 10,000
  events. `SqlStore.ingest` 10.8 s, of which 4.9 s is psycopg rewriting the placeholders of
  SQLAlchemy's 100-row `INSERT INTO decisions ... VALUES ... RETURNING` (insertmanyvalues) in Python
  on every batch: `psycopg/_queries.py` `_query2pg_nocache`, because statements longer than
  `MAX_CACHED_STATEMENT_LENGTH` (4,096 characters) are never cached; 2.1 s is `zlib.compress` of
  every report; 1.8 s the pipelined executemany of the report insert and of the device upsert.
  `logs.decode` 6.6 s: `parse_json` 2.9 s (`orjson.loads` 2.0 s, then the duplicate-key check's
  re-encoding of the whole batch and its two colon counts), `parse_batch` 3.0 s (each report
  re-encoded with sorted keys and hashed, the checks). The event loop spends 0.76 s of its 2.0 s in
  gunzip: `read_body` decompresses on the loop, not in a worker thread.
- On the wall clock, SQLite: of the worker threads' 44.3 s (10,000 events), 23.1 s were spent in
  the `BEGIN IMMEDIATE` that `store/engine.py` issues for every transaction, waiting for the write
  lock: one-row reads wait too (`bundle_names` 84 ms and `role_for` 44 ms per request, 8.4 s and
  4.8 s in all), and `SqlStore.ingest` holds the lock while it compresses the reports (5.7 s).
- Two server processes on one PostgreSQL (replicas, the clients split between them, 40,000 events):
  1,540 events/s, against 988 and 1,048 for one process in the runs before and after. One process
  is held to about one core by the GIL; a second one uses the second core.
"""

CHANGES = """\
What would change it, in `pyagent/server` (not changed by the benchmark; estimates from the step
table above):

1. **Store a report once per inventory, not once per event** (`events.py` `_event`, `store/sql.py`
   `SqlStore.ingest`). The digest covers `collected_at`, which the agent stamps on every run, so no
   two reports are ever equal: every event stores a full zlib copy of its report (the stored-report
   column above: most of the bytes per event) and pays its compression. Digest the report without
   `collected_at` (keep `collected_at` on the decision row: a migration), look up which digests are
   already stored (`SELECT digest FROM reports WHERE digest IN (...)`) and compress only the new
   ones, before the transaction opens. Storage per device per day falls to the last column of the
   storage table; the compression step to the changed share of events.
2. **One short statement per table on PostgreSQL** (`store/sql.py` `SqlStore.ingest`,
   `store/rows.py` `device_upsert`): `INSERT INTO decisions (...) SELECT * FROM unnest(%s::text[],
   %s::timestamptz[], ...) ON CONFLICT DO NOTHING RETURNING decision_id, decided_at` binds one array
   per column: the statement is short (parsed once, cached by psycopg and prepared by PostgreSQL),
   and the same for the reports and the device upsert (now 100 statements each in a pipeline). Or
   COPY into a temporary table and `INSERT ... SELECT ... ON CONFLICT`.
3. **A cheaper duplicate-key check** (`body.py` `parse_json`): it re-encodes the whole batch to count
   colons. `parse_batch` already encodes each report canonically (sorted keys keep the colons), so
   the check can compare the body's colons with those of the events without their reports plus the
   reports' canonical encodings, and re-encode only the small part.
4. **No per-request lookups** (`logs.py` `routes`, `auth.py` `require`, `store/engine.py`
   `open_engine`): every `POST /logs` runs two extra transactions (the token's role, the published
   bundle names), each preceded on PostgreSQL by the pool's pre-ping (`pool_pre_ping=True`: a
   `SELECT 1` per checkout). Keep the bundle names in the `ServerContext` (the notifier already
   knows when they change) and the token's role for a few seconds; ping only after an error. Cheap
   per event at 100 events a batch, the main cost for agents that upload one event at a time.
5. **Gunzip in the worker thread** (`body.py` `read_body`): decompress the bounded compressed body
   where `parse_json` runs, so that the event loop (long polls, other requests) is not held for the
   milliseconds each batch takes.
6. **SQLite: readers do not take the write lock** (`store/engine.py` `open_engine`): every
   transaction, reads included, begins `BEGIN IMMEDIATE`, so the token and bundle-name lookups queue
   behind the writer, and waiting writers sleep in SQLite's busy handler (steps of up to 100 ms)
   instead of being woken. Use `BEGIN IMMEDIATE` for writes only (WAL readers never block), and
   serialise the writers with a lock in the process; compress before the transaction.
7. **PostgreSQL: the device upsert rewrites a wide row per decision** (`store/rows.py`
   `device_upsert`): each decision writes a new version of its device's row (the whole result JSON),
   and since indexed columns change (`decided_at`, `verdict`) no update is HOT: the `devices` table
   grows with dead rows until autovacuum (see `tables_grown_bytes` in `bench/results.json`).

Even with all of these, a process does its Python work on one core (the GIL): the C parts alone
(gunzip, `orjson.loads`, the canonical encoding and its SHA-256) cost about the sum of those rows of
the step table per event, for reports of this size. On PostgreSQL more throughput on one machine
then needs more server processes (`pyagent server run --workers N`, or replicas behind nginx; the
benchmark runs one), and on this
2-core machine PostgreSQL's own CPU per event (the PostgreSQL CPU column) is part of the same budget:
5,000 events/s leave 0.4 ms of CPU per event for the server, PostgreSQL and the clients together.
"""


def _verdicts(results: dict[str, Any]) -> str:
    lines = []
    for _ident, text, value, op, target in ingest_goals(results):
        shown = "n/a" if value is None else f"{value:,}"
        verdict = "holds" if goal_holds(value, op, target) else "does not hold"
        lines.append(f"- {text}: {shown}, target {op} {target:,}: {verdict}")
    return "\n".join(lines)


def _bound(results: dict[str, Any]) -> str:
    parts = []
    for kind, run in runs(results):
        up = run["upload"]
        cpu = up.get("server_cpu_ms_per_event")
        if not isinstance(cpu, int | float) or not cpu:
            continue
        cores = up["server_cpu_s"] / up["wall_s"] if up.get("wall_s") else 0.0
        extra = ""
        if kind == "postgresql" and up.get("postgres_cpu_s") is not None:
            extra = (
                f" and {up['postgres_cpu_s'] * 1000 / max(1, up['events_acknowledged']):.3f} ms in PostgreSQL"
            )
        parts.append(
            f"{NAMES[kind]}: {up['events_per_s']:,.0f} events/s with {cpu:.3f} ms of server CPU per event"
            f"{extra}, the server process using {cores:.2f} cores, "
            f"the machine {up['machine_busy_share']:.0%} busy"
        )
    return "; ".join(parts)


def _savings(results: dict[str, Any]) -> str:
    """What changes 1 and 3 would save, from this run's step table."""
    parts = []
    for kind, run in runs(results):
        steps = run.get("steps", {}).get("us_per_event", {})
        share = run["storage"].get("new_inventory_share_steady", 0.0)
        compress = next((v for k, v in steps.items() if k.startswith("report compression")), None)
        check = next((v for k, v in steps.items() if k.startswith("duplicate-key")), None)
        if compress is None or check is None:
            continue
        saved = compress * (1 - share) + check
        total = run["steps"]["total_us_per_event"]
        parts.append(f"{NAMES[kind]} about {saved:,.0f} of {total:,.0f} us per event")
    return (
        "By this run's step table, changes 1 and 3 alone would save " + "; ".join(parts) + "."
        if parts
        else ""
    )


def ingest_notes(results: dict[str, Any]) -> str:
    goals = ingest_goals(results)
    if not goals:
        return ""
    measured = _bound(results)
    summary = (
        f"The server is bound by its own CPU: {measured}. One server process does the Python work of its "
        "four worker threads one at a time (the GIL); only gunzip, zlib and SHA-256 release it. So the "
        "rate is about one over the server's CPU per event, whatever the number of clients."
        if measured
        else ""
    )
    crowded = [
        NAMES[kind]
        for kind, run in runs(results)
        if run["upload"]["machine_busy_share"] >= 0.95
        and run["upload"]["server_cpu_s"] < 0.9 * run["upload"]["wall_s"]
    ]
    if crowded:
        summary += (
            f" In this run ({', '.join(crowded)}) the machine was saturated and the server got less than "
            "0.9 of a core: other work (see the load averages) took the rest, so the rate is lower than "
            "the server's CPU per event allows."
        )
    parts = [
        "### Server ingest",
        "",
        _verdicts(results),
        "",
        summary,
        "",
        PROFILE,
        CHANGES,
        _savings(results),
    ]
    return "\n".join(parts)
