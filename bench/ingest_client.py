"""The load generator of the ingest benchmark, a process of its own (``python -m bench.ingest_client``):
``--clients`` threads, each on one keep-alive ``http.client`` connection, POST the pre-compressed
batches of a corpus to ``/logs`` (``Content-Encoding: gzip``, as OPA uploads decision logs) until
none is left. It samples the server's resident memory (``VmRSS`` of ``/proc/PID/status``) when the
acknowledged events first reach each mark, and writes what it saw as JSON to ``--out``.

A batch that is not answered 200 stops the run (the benchmark then fails, naming the answer).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.measure import summarise

__all__ = ["main", "process_cpu_s", "process_tree", "rss_kb", "tree_cpu_s", "tree_rss_kb"]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``pyagent server run --workers N``: the supervisor and its workers)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", "rb") as handle:
                    queue.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return pids


def tree_rss_kb(pid: int) -> int:
    """``VmRSS`` of ``pid`` and its descendants, summed, in KiB."""
    return sum(rss_kb(each) for each in process_tree(pid))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (the workers live as long as the server)."""
    return sum(process_cpu_s(each) for each in process_tree(pid))


def rss_kb(pid: int) -> int:
    """``VmRSS`` of process ``pid`` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_cpu_s(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` so far: its own threads, and with ``children``
    also those of its children that have exited and been waited for."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class _Run:
    def __init__(self, batches: list[dict[str, Any]], server_pid: int, marks: Sequence[int]) -> None:
        self.batches = batches
        self.server_pid = server_pid
        self.marks = sorted(marks)
        self.lock = threading.Lock()
        self.next = 0
        self.acknowledged = 0
        self.stored = 0
        self.duplicates = 0
        self.request_ns: list[int] = []
        self.rss: dict[str, int] = {}
        self.curve: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.files: dict[str, int] = {}

    def take(self) -> dict[str, Any] | None:
        with self.lock:
            if self.stop.is_set() or self.next >= len(self.batches):
                return None
            batch = self.batches[self.next]
            self.next += 1
            return batch

    def done(self, events: int, answer: dict[str, Any], took_ns: int) -> None:
        with self.lock:
            before = self.acknowledged
            self.acknowledged += events
            self.stored += int(answer.get("stored", 0))
            self.duplicates += int(answer.get("duplicates", 0))
            self.request_ns.append(took_ns)
            crossed = [m for m in self.marks if before < m <= self.acknowledged]
            step = max(1, self.marks[-1] // 20) if self.marks else 0
            sample = bool(crossed) or (step > 0 and before // step != self.acknowledged // step)
        if sample:
            kb = tree_rss_kb(self.server_pid)
            with self.lock:
                self.curve.append((self.acknowledged, kb))
                for mark in crossed:
                    self.rss[str(mark)] = kb

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)
        self.stop.set()


def _read(run: _Run, batch: dict[str, Any]) -> bytes:
    fd = run.files[batch["path"]]
    return os.pread(fd, int(batch["length"]), int(batch["offset"]))


def _client(run: _Run, host: str, port: int, token: str) -> None:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    connection = http.client.HTTPConnection(host, port, timeout=300)
    try:
        while (batch := run.take()) is not None:
            body = _read(run, batch)
            start = time.perf_counter_ns()
            try:
                connection.request("POST", "/logs", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as err:
                run.fail(f"POST /logs: {type(err).__name__}: {err}")
                return
            took = time.perf_counter_ns() - start
            if response.status != 200:
                run.fail(f"POST /logs answered {response.status}: {payload[:300]!r}")
                return
            run.done(int(batch["events"]), json.loads(payload), took)
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_client", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, required=True, help="the batch index (JSON)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--marks", default="", help="comma-separated event counts to sample RSS at")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    batches: list[dict[str, Any]] = json.loads(args.corpus.read_text())
    marks = [int(m) for m in args.marks.split(",") if m]
    run = _Run(batches, args.server_pid, marks)
    for path in {b["path"] for b in batches}:
        run.files[path] = os.open(path, os.O_RDONLY)
    for batch in batches[: min(len(batches), 64)]:
        _read(run, batch)  # warm the page cache a little; the rest is read as it goes
    where = urlsplit(args.url)
    token = args.token_file.read_text().strip()
    rss_start = tree_rss_kb(args.server_pid)
    cpu_start = tree_cpu_s(args.server_pid)
    server_processes = len(process_tree(args.server_pid))
    own_start = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    threads = [
        threading.Thread(target=_client, args=(run, where.hostname or "127.0.0.1", where.port or 80, token))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF)
    sent = sum(int(b["events"]) for b in batches[: run.next])
    result = {
        "clients": args.clients,
        "batches": len(run.request_ns),
        "events_sent": sent,
        "events_acknowledged": run.acknowledged,
        "stored": run.stored,
        "duplicates": run.duplicates,
        "wall_s": round(wall, 3),
        "events_per_s": round(run.acknowledged / wall, 1) if wall else None,
        "request_ms": summarise(run.request_ns),
        "rss_kb_start": rss_start,
        "rss_kb": run.rss,
        "rss_kb_end": tree_rss_kb(args.server_pid),
        "server_processes": server_processes,
        "rss_curve": run.curve,
        "rss_kb_peak": max([kb for _, kb in run.curve] or [0]),
        "server_cpu_s": round(tree_cpu_s(args.server_pid) - cpu_start, 2),
        "client_cpu_s": round(own.ru_utime + own.ru_stime - own_start.ru_utime - own_start.ru_stime, 2),
        "errors": run.errors,
    }
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    for fd in run.files.values():
        os.close(fd)
    return 0 if not run.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
