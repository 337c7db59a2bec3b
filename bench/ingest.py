"""``pyagent server`` under load, on SQLite and on PostgreSQL (``python -m bench.ingest``; ``make bench``
runs it too): decision-log ingest throughput, the server's memory over the run, long-poll wake-up
after a publish, and what the history costs on disk.

For each database: a fresh store (migrated, an agent token, the compiled policy published as bundle
``pyagent``), a real ``pyagent server run`` process, then the corpus of :mod:`bench.ingest_events`
uploaded by :mod:`bench.ingest_client` in another process. The count of stored decisions must equal
the events sent, exactly. Then the database's size, then ``longpoll_runs`` publishes (another
process's transaction, as ``pyagent server publish`` makes it) while a client long-polls the wasm
bundle. PostgreSQL comes from the tests' helper (a throwaway ``initdb`` cluster).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import ingest_store
from bench.ingest_events import UNVERSIONED, Corpus, FleetPlan, bundle_revision, generate, with_revision
from bench.measure import loadavg, summarise
from pyagent.server.publish import publish
from pyagent.server.store import open_store
from pyagent.server.store.sql import SqlStore

__all__ = ["FULL", "SMOKE", "IngestPlan", "main", "measure"]

BUNDLE_NAME = "pyagent"
#: ``cpu`` or ``wall``: the clock of ``--profile`` (see :mod:`bench.ingest_profile`)
PROFILE_CLOCK = "PYAGENT_BENCH_PROFILE_CLOCK"


@dataclass(frozen=True)
class IngestPlan:
    fleet: FleetPlan = field(default_factory=FleetPlan)
    clients: int = 4
    #: ``pyagent server run --workers``: one process per core, as a 2-core deployment runs it
    workers: int = 2
    longpoll_runs: int = 10
    longpoll_wait_s: int = 30
    databases: Sequence[str] = ("sqlite", "postgresql")
    step_batches: int = 20  # batches for the step-by-step measurement (0: none)

    @property
    def rss_marks(self) -> tuple[int, int]:
        return max(1, self.fleet.events // 10), self.fleet.events


FULL = IngestPlan()
SMOKE = IngestPlan(fleet=FleetPlan(devices=20, runs=15), longpoll_runs=2, step_batches=1)


def _log(message: str) -> None:
    print(f"[bench ingest] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- databases


def postgres_unavailable() -> str | None:
    """Why no PostgreSQL can be started here, or None when it can."""
    try:
        from tests.helpers.services import find_binary
    except ImportError as err:
        return f"the tests' PostgreSQL helper is not importable: {err}"
    return None if find_binary("initdb") else "PostgreSQL is not installed (run `make services`)"


@contextlib.contextmanager
def _database(kind: str, workdir: Path) -> Iterator[Callable[[str], str]]:
    """A function giving the URL of a fresh, empty database of ``kind`` for each name."""
    if kind == "sqlite":
        yield lambda name: f"sqlite:///{workdir / f'{name}.db'}"
        return
    from tests.helpers.postgres import run_postgres  # the tests' throwaway cluster (initdb, pg_ctl)

    with run_postgres(workdir) as postgres:
        yield postgres.create_database


# ---------------------------------------------------------------------------------------- server


@dataclass
class _Server:
    url: str
    pid: int


@contextlib.contextmanager
def _server(workdir: Path, url: str, profile_dir: Path | None, workers: int = 1) -> Iterator[_Server]:
    from tests.helpers.opa_server import free_port
    from tests.helpers.pyagent_server import run_server, wait_healthy

    if profile_dir is None:
        with run_server(workdir, url, extra_args=["--workers", str(workers)]) as running:
            yield _Server(running.url, running.process.pid)
        return
    port = free_port()
    log = workdir / f"server-profiled-{port}.log"
    command = [
        sys.executable,
        "-m",
        "bench.ingest_profile",
        "--db",
        url,
        "--bind",
        f"127.0.0.1:{port}",
        "--out",
        str(profile_dir),
        "--clock",
        os.environ.get(PROFILE_CLOCK, "cpu"),
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)
        yield _Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(timeout=120)


# ---------------------------------------------------------------------------------------- phases


def _upload(server: _Server, token: str, index: Path, plan: IngestPlan, workdir: Path) -> dict[str, Any]:
    token_file = workdir / "agent-token"
    token_file.write_text(token, encoding="utf-8")
    out = workdir / "client-result.json"
    command = [
        sys.executable,
        "-m",
        "bench.ingest_client",
        "--url",
        server.url,
        "--token-file",
        str(token_file),
        "--corpus",
        str(index),
        "--clients",
        str(plan.clients),
        "--server-pid",
        str(server.pid),
        "--marks",
        ",".join(map(str, plan.rss_marks)),
        "--out",
        str(out),
    ]
    pg_cpu, busy = ingest_store.postgres_cpu_s(), ingest_store.machine_busy()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    busy_end = ingest_store.machine_busy()
    if not out.exists():
        raise RuntimeError(f"the ingest client exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    if result["errors"]:
        raise RuntimeError(f"the ingest client failed: {result['errors'][:3]}")
    result["postgres_cpu_s"] = round(ingest_store.postgres_cpu_s() - pg_cpu, 2)
    result["server_cpu_ms_per_event"] = round(
        result["server_cpu_s"] * 1000 / max(1, result["events_acknowledged"]), 3
    )
    cores = len(os.sched_getaffinity(0))
    result["machine_busy_share"] = round((busy_end[0] - busy[0]) / max(1, busy_end[1] - busy[1]), 3)
    result["cores"] = cores
    marks = [str(m) for m in plan.rss_marks]
    low, high = result["rss_kb"].get(marks[0]), result["rss_kb"].get(marks[1])
    result["rss_mb"] = {m: round(result["rss_kb"][m] / 1024, 1) for m in marks if m in result["rss_kb"]}
    result["rss_ratio"] = round(high / low, 3) if low and high else None
    result["rss_mb_peak"] = round(result["rss_kb_peak"] / 1024, 1)
    return result


def _get(url: str, path: str, headers: dict[str, str], timeout: float) -> tuple[int, str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, response.getheader("ETag") or "", len(body)
    finally:
        connection.close()


def _etag(raw: bytes) -> str:  # as pyagent.server.publish makes it
    return f'"{hashlib.sha256(raw).hexdigest()}"'


def _longpoll(
    server: _Server, token: str, store: SqlStore, bundle_raw: bytes, plan: IngestPlan
) -> dict[str, Any]:
    """``longpoll_runs`` times: a client holds ``GET /bundles/pyagent/wasm`` (``If-None-Match`` the
    current ETag, ``Prefer: wait=N``); after 0.5-1 s another connection publishes a new revision; the
    latency runs from the publish's commit (``publish`` returned) to the response read in full."""
    rng = random.Random(5)
    etag = _etag(bundle_raw)
    after_commit: list[int] = []
    after_start: list[int] = []
    publish_ns: list[int] = []
    held_s: list[float] = []
    for run in range(plan.longpoll_runs):
        raw = with_revision(bundle_raw, f"bench-longpoll-{run + 1}")
        answer: dict[str, Any] = {}
        headers = {
            "Authorization": f"Bearer {token}",
            "If-None-Match": etag,
            "Prefer": f"wait={plan.longpoll_wait_s}",
        }

        def hold(headers: dict[str, str] = headers, answer: dict[str, Any] = answer) -> None:
            answer["sent"] = time.perf_counter_ns()
            answer["response"] = _get(
                server.url, f"/bundles/{BUNDLE_NAME}/wasm", headers, plan.longpoll_wait_s + 10
            )
            answer["received"] = time.perf_counter_ns()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        time.sleep(rng.uniform(0.5, 1.0))
        start = time.perf_counter_ns()
        publish(
            store, BUNDLE_NAME, [(f"longpoll-{run}.tar.gz", raw)], verification=None, published_by="bench"
        )
        committed = time.perf_counter_ns()
        holder.join(plan.longpoll_wait_s + 15)
        status, got, _size = answer.get("response", (0, "", 0))
        etag = _etag(raw)
        if status != 200 or got != etag:
            raise RuntimeError(f"long poll {run}: answered {status} with ETag {got!r}, expected {etag}")
        after_commit.append(answer["received"] - committed)
        after_start.append(answer["received"] - start)
        publish_ns.append(committed - start)
        held_s.append(round((answer["received"] - answer["sent"]) / 1e9, 3))
    return {
        "after_commit": summarise(after_commit),
        "after_publish_start": summarise(after_start),
        "publish": summarise(publish_ns),
        "after_commit_ms": [round(ns / 1e6, 1) for ns in after_commit],
        "held_s": held_s,
    }


def _prepared(url: str, bundle_raw: bytes) -> tuple[SqlStore, str]:
    """A migrated store with an agent token and the policy published as bundle ``pyagent``."""
    from tests.helpers.pyagent_server import add_token

    store = open_store(url)
    assert isinstance(store, SqlStore)
    token = add_token(url, "bench-agents", "agent")
    publish(store, BUNDLE_NAME, [("bundle.tar.gz", bundle_raw)], verification=None, published_by="bench")
    return store, token


def _steps(url: str, corpus: Corpus, plan: IngestPlan, bundle_raw: bytes) -> dict[str, Any]:
    store, token = _prepared(url, bundle_raw)
    try:
        run_batches = -(-plan.fleet.devices // plan.fleet.batch)  # one run of the fleet: the warm-up
        refs = corpus.batches[: run_batches + plan.step_batches]

        def read(ref: Any) -> bytes:
            with open(ref.path, "rb") as handle:
                return os.pread(handle.fileno(), ref.length, ref.offset)

        batches = [read(ref) for ref in refs]
        return ingest_store.server_steps(store, token, batches[:run_batches], batches[run_batches:])
    finally:
        store.close()


def _one(
    kind: str,
    fresh: Callable[[str], str],
    corpus: Corpus,
    index: Path,
    plan: IngestPlan,
    bundle_raw: bytes,
    workdir: Path,
    profile_dir: Path | None,
) -> dict[str, Any]:
    url = fresh("ingest")
    store, token = _prepared(url, bundle_raw)
    try:
        before = ingest_store.db_bytes(kind, store, url)
        with _server(workdir, url, profile_dir and profile_dir / kind, plan.workers) as server:
            _log(f"{kind}: uploading {corpus.events:,} events ({plan.clients} clients) ...")
            upload = _upload(server, token, index, plan, workdir)
            _log(f"{kind}: {upload['events_per_s']:,} events/s, RSS {upload['rss_mb']} MB")
            stored = ingest_store.counts(store)
            after = ingest_store.db_bytes(kind, store, url)
            longpoll = _longpoll(server, token, store, bundle_raw, plan) if plan.longpoll_runs else {}
    finally:
        store.close()
    if stored["decisions"] != corpus.events:
        raise RuntimeError(f"{kind}: {stored['decisions']} decisions stored, {corpus.events} sent")
    return {
        "upload": upload,
        "stored": stored,
        "stored_equals_sent": stored["decisions"] == corpus.events,
        "storage": ingest_store.storage(before, after, stored, corpus.events, plan.fleet.change_every),
        "longpoll": longpoll,
        "steps": _steps(fresh("steps"), corpus, plan, bundle_raw) if plan.step_batches else {},
    }


def measure(
    plan: IngestPlan, bundle: Path, workdir: Path, *, profile_dir: Path | None = None
) -> dict[str, Any]:
    """Every database of the plan, on one corpus; ``{"skipped": reason}`` for a database that
    cannot be started here (no PostgreSQL)."""
    _log(f"generating {plan.fleet.events:,} events ({plan.fleet.devices:,} devices) ...")
    corpus = generate(plan.fleet, bundle, workdir)
    index = corpus.write_index(workdir / "corpus.json")
    _log(f"generated in {corpus.generate_s:.1f} s: {corpus.summary()}")
    bundle_raw = bundle.read_bytes()
    if not bundle_revision(bundle_raw):  # the server publishes only bundles with a revision
        bundle_raw = with_revision(bundle_raw, UNVERSIONED)
    results: dict[str, Any] = {
        "plan": {
            **asdict(plan.fleet),
            "clients": plan.clients,
            "workers": plan.workers,
            "longpoll_runs": plan.longpoll_runs,
            "rss_marks": list(plan.rss_marks),
        },
        "corpus": corpus.summary(),
        "load_start": loadavg(),
    }
    for kind in plan.databases:
        missing = postgres_unavailable() if kind == "postgresql" else None
        if missing:
            _log(f"{kind}: skipped: {missing}")
            results[kind] = {"skipped": missing}
            continue
        with _database(kind, workdir) as fresh:
            results[kind] = _one(kind, fresh, corpus, index, plan, bundle_raw, workdir, profile_dir)
    for ref in {b.path for b in corpus.batches}:
        Path(ref).unlink(missing_ok=True)
    results["load_end"] = loadavg()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from bench.ingest_report import goal_holds, ingest_goals, ingest_markdown
    from bench.run import find_bundle

    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks that the bench runs")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one database only")
    parser.add_argument("--events", type=int, help="devices x runs: set runs so that about this many")
    parser.add_argument("--workers", type=int, help=f"server processes [default: {FULL.workers}]")
    parser.add_argument("--clients", type=int, help=f"concurrent uploaders [default: {FULL.clients}]")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--profile", type=Path, help="run the server under cProfile; profiles go here")
    parser.add_argument(
        "--profile-clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="cpu: each thread's CPU time; wall: elapsed time [default: cpu]",
    )
    args = parser.parse_args(argv)
    os.environ[PROFILE_CLOCK] = args.profile_clock
    plan = SMOKE if args.smoke else FULL
    if args.only:
        plan = dataclasses.replace(plan, databases=(args.only,))
    if args.workers:
        plan = dataclasses.replace(plan, workers=args.workers)
    if args.clients:
        plan = dataclasses.replace(plan, clients=args.clients)
    if args.events:
        runs = max(1, args.events // plan.fleet.devices)
        plan = dataclasses.replace(plan, fleet=dataclasses.replace(plan.fleet, runs=runs))
    with tempfile.TemporaryDirectory(prefix="pyagent-bench-ingest-") as work:
        results = {"server_ingest": measure(plan, find_bundle(), Path(work), profile_dir=args.profile)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("\n".join(ingest_markdown(results)))
    for ident, goal, value, op, target in ingest_goals(results):
        mark = "PASS" if goal_holds(value, op, target) else "FAIL"
        print(f"{mark}  {goal}: {value} (target {op} {target})  [{ident}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
