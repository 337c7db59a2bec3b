"""The server benchmark (:mod:`bench.ingest`) in the results: its goals, its section of
``docs/benchmarks.md``, and its part of "What stands in the way" (``bench/ingest_notes.py``)."""

from __future__ import annotations

from typing import Any

from bench.measure import remeasured

__all__ = ["INGEST_TARGETS", "NAMES", "goal_holds", "ingest_goals", "ingest_markdown", "runs"]

#: events/s the issue asks for, per database (on a 2-core machine)
INGEST_TARGETS = {"postgresql": 5_000, "sqlite": 2_000}
RSS_TARGET = 1.2
LONGPOLL_TARGET_S = 1.0
NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}

Goal = tuple[str, str, float | None, str, float]


def section(results: dict[str, Any]) -> dict[str, Any]:
    found = results.get("server_ingest")
    return found if isinstance(found, dict) else {}


def runs(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(database, its results) of every database that was measured (not skipped)."""
    found = section(results)
    return [(k, found[k]) for k in NAMES if isinstance(found.get(k), dict) and "upload" in found[k]]


def goal_holds(value: float | None, op: str, target: float) -> bool:
    return value is not None and (value <= target if op == "<=" else value >= target)


def ingest_goals(results: dict[str, Any]) -> list[Goal]:
    """(id, text, value, op, target) of every server goal; a skipped database has no value (fails)."""
    found = section(results)
    if not found:
        return []
    marks = found.get("plan", {}).get("rss_marks", [10_000, 100_000])
    rows: list[Goal] = []
    for kind, name in NAMES.items():
        run = found.get(kind, {})
        upload = run.get("upload", {})
        wake = run.get("longpoll", {}).get("after_commit", {}).get("median_ms")
        wake_s = round(wake / 1000, 3) if isinstance(wake, int | float) else None
        rate = f"server ingest, {name}: events/s committed"
        rss = f"server RSS, {name}: at {marks[-1]:,} / at {marks[0]:,} events"
        poll = f"long-poll wake-up after a publish, {name}: median s"
        rows += [
            (f"server_ingest_{kind}", rate, upload.get("events_per_s"), ">=", INGEST_TARGETS[kind]),
            (f"server_rss_flat_{kind}", rss, upload.get("rss_ratio"), "<=", RSS_TARGET),
            (f"server_longpoll_{kind}", poll, wake_s, "<=", LONGPOLL_TARGET_S),
        ]
    return rows


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def _num(value: object, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "-"


def _kib(value: object) -> str:
    return f"{value / 1024:,.1f}" if isinstance(value, int | float) else "-"


def _upload_row(kind: str, run: dict[str, Any], marks: list[int]) -> list[str]:
    up = run["upload"]
    rss = up.get("rss_mb", {})
    return [
        NAMES[kind],
        f"{up['events_acknowledged']:,}",
        "yes" if run["stored_equals_sent"] else "**NO**",
        _num(up["wall_s"], 1),
        f"**{_num(up['events_per_s'])}**",
        _num(up["request_ms"]["median_ms"], 1),
        _num(up["request_ms"]["p99_ms"], 1),
        _num(up.get("server_cpu_ms_per_event"), 3),
        _num(up.get("postgres_cpu_s"), 1) if kind == "postgresql" else "-",
        _num(up["server_cpu_s"], 1),
        _num(up["client_cpu_s"], 1),
        f"{up['machine_busy_share']:.0%}",
        _num(rss.get(str(marks[0])), 1),
        _num(rss.get(str(marks[-1])), 1),
        _num(up.get("rss_ratio"), 3),
        _num(up.get("rss_mb_peak"), 1),
    ]


def _poll_row(kind: str, poll: dict[str, Any]) -> list[str]:
    after, start = poll["after_commit"], poll["after_publish_start"]
    return [
        NAMES[kind],
        _num(after["median_ms"], 1),
        _num(after["min_ms"], 1),
        _num(max(poll["after_commit_ms"]), 1),
        _num(start["median_ms"], 1),
        _num(poll["publish"]["median_ms"], 1),
        str(after["n"]),
    ]


def _disk_row(kind: str, disk: dict[str, Any]) -> list[str]:
    return [
        NAMES[kind],
        _kib(disk["bytes_per_event"]),
        _kib(disk["per_device_per_day_bytes"]),
        _kib(disk["decision_row_bytes"]),
        _kib(disk["report_bytes"]),
        f"{disk['distinct_reports_share']:.1%}",
        _kib(disk["per_device_per_day_if_reports_dedup_bytes"]),
    ]


def _steps(measured: list[tuple[str, dict[str, Any]]]) -> list[str]:
    with_steps = [(kind, run["steps"]) for kind, run in measured if run.get("steps")]
    if not with_steps:
        return []
    names = list(with_steps[0][1]["us_per_event"])
    rows = [[name, *(_num(steps["us_per_event"].get(name), 1) for _, steps in with_steps)] for name in names]
    rows.append(["**sum**", *(f"**{_num(steps['total_us_per_event'], 1)}**" for _, steps in with_steps)])
    rows.append(
        [
            "server CPU per event in the run above, all threads",
            *(
                _num(run["upload"].get("server_cpu_ms_per_event", 0) * 1000, 1)
                for _, run in measured
                if run.get("steps")
            ),
        ]
    )
    return [
        "Where the server's CPU goes: the steps of `POST /logs` (`read_body`'s gunzip, `decode_batch`, "
        "`SqlStore.ingest`, the token and bundle-name lookups), called in the benchmark's process, one "
        f"thread, on {with_steps[0][1]['events']:,} events after one run of the fleet was stored untimed "
        f"(so {with_steps[0][1].get('known_report_share', 0):.0%} of the reports are known inventories, "
        "as in a live fleet), microseconds of that thread's CPU per event (no HTTP, no profiler; "
        "PostgreSQL's own work is not in it):",
        "",
        *_table(["step", *(f"{NAMES[kind]} us/event" for kind, _ in with_steps)], rows),
    ]


def ingest_markdown(results: dict[str, Any]) -> list[str]:
    """The section of ``docs/benchmarks.md``: the corpus, then throughput and memory, long polls,
    storage, and the server's CPU by step."""
    found = section(results)
    if not found:
        return []
    plan, corpus = found["plan"], found["corpus"]
    marks = plan["rss_marks"]
    skipped = [f"{NAMES[k]}: skipped ({found[k]['skipped']})" for k in NAMES if "skipped" in found.get(k, {})]
    measured = runs(results)
    upload_head = [
        "database",
        "events",
        "all stored",
        "wall s",
        "events/s",
        "request median ms",
        "p99 ms",
        "server CPU ms/event",
        "PostgreSQL CPU s",
        "server CPU s",
        "client CPU s",
        "machine busy",
        f"server RSS MB at {marks[0]:,}",
        f"at {marks[-1]:,}",
        "ratio",
        "largest of 20 samples MB",
    ]
    poll_head = [
        "database",
        "median ms",
        "min ms",
        "max ms",
        "median ms from publish start",
        "publish ms",
        "runs",
    ]
    disk_head = [
        "database",
        "KiB per event",
        "KiB per device per day",
        "history row KiB",
        "stored report KiB",
        "distinct reports / events",
        "KiB per device per day, reports stored once per inventory",
    ]
    polls = [(kind, run["longpoll"]) for kind, run in measured if run.get("longpoll")]
    return [
        "## Server: decision-log ingest (`pyagent server run`)",
        "",
        remeasured(found, "ingest"),
        "",
        f"{corpus['events']:,} OPA decision-log events from {corpus['devices']:,} Android devices of "
        f"{plan['apps']} apps each ({plan['runs']} decisions per device, one an hour from "
        f"{corpus['first_run_at']}), as the `android-pm` collector reports them (id, versionCode, "
        f"installer, user, APK path): {corpus['json_bytes_per_event']:,} bytes of JSON per event, "
        f"{corpus['gzip_bytes_per_event']:,} gzip-compressed. Batches of {plan['batch']} events, gzip level "
        f"{plan['gzip_level']} (OPA's), posted to `/logs` by {plan['clients']} keep-alive connections from "
        "another process, against one `pyagent server run` process with a fresh database. Each decision "
        "is the policy's own result (pyagent's embedded engine, once per device). Inventories: a "
        f"device's first report is new; afterwards exactly {corpus['changed_share_after_first_run']:.0%} "
        "of its runs report a changed inventory (1-3 apps updated), so "
        f"{corpus['new_inventory_share']:.1%} of the events carry an inventory not seen before. Every "
        "report carries the run's own `collected_at` (as the agent stamps it), so every report document "
        "is distinct. The stored count is checked against the events sent, exactly. Server CPU: "
        "`/proc/PID/stat` of the server process over the upload; RSS: its `VmRSS` when the acknowledged "
        "events first reach each mark." + (f" {'; '.join(skipped)}." if skipped else ""),
        "",
        *_table(upload_head, [_upload_row(kind, run, marks) for kind, run in measured]),
        "Long polls: a client holds `GET /bundles/pyagent/wasm` with the current ETag and `Prefer: wait=30`; "
        "another connection publishes a new revision (`pyagent.server.publish.publish`, as "
        "`pyagent server publish` does) 0.5-1 s later. Latency: from the publish's commit to the response "
        "read in full (PostgreSQL: LISTEN/NOTIFY; SQLite: the server polls every 0.2 s).",
        "",
        *_table(poll_head, [_poll_row(kind, poll) for kind, poll in polls]),
        "Storage: the database's growth over the run (SQLite: the file after a WAL checkpoint; PostgreSQL: "
        "`pg_database_size`), per event, and per device per day at 24 hourly decisions. The history row "
        "(with its indexes) and the stored report (zlib, one per distinct report document) are split "
        "out; the last column is what a device would cost if reports were stored once per inventory "
        "(only the changed share new), computed from the measured row sizes.",
        "",
        *_table(disk_head, [_disk_row(kind, run["storage"]) for kind, run in measured]),
        *_steps(measured),
    ]
