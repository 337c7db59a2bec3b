"""The fleet's decision-log events, as OPA uploads them, batched and gzip-compressed before the timed
run and written to files that the client process reads (so the load generator spends no CPU on
making them while the server is measured).

An event is what OPA's decision-log plugin sends for a query of ``pyagent/decision``: a unique
``decision_id`` (UUID v4), ``labels`` of the OPA instance that decided (four instances share the
fleet), ``bundles`` with the active revision, ``path``, ``input`` = ``{"at", "report"}`` where
``report`` is the device's report of that run, ``result`` = the policy's decision (what
``data.pyagent.decision`` evaluates to: computed by pyagent's embedded engine from each device's
first report at its first instant, and reused for its later runs, whose inventory changes are
updates of apps no ban names), ``requested_by``, ``req_id``, ``timestamp`` and ``metrics``.
A batch is a JSON array of ``batch`` consecutive events, gzip-compressed at level 6 (Go's default,
which OPA uses). Device ``d`` decides once per ``interval_s`` at a fixed offset within it, so the
events are in time order; its report's ``collected_at`` is 2 s before the decision, as the agent
stamps a fresh collection time on every run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import io
import json
import os
import random
import tarfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson

from bench.ingest_fleet import AndroidDevice, make_device

__all__ = ["BatchRef", "Corpus", "FleetPlan", "bundle_revision", "generate", "with_revision"]

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FleetPlan:
    """The fleet and its events: ``devices`` x ``runs`` events in batches of ``batch``."""

    devices: int = 2_000
    runs: int = 50
    apps: int = 200
    change_every: int = 10
    batch: int = 100
    seed: int = 2024
    start: str | None = None  # the first run's hour; None: ``runs`` hours before now (to the hour)
    interval_s: int = 3600
    opa_instances: int = 4
    gzip_level: int = 6

    @property
    def events(self) -> int:
        return self.devices * self.runs

    @property
    def batches(self) -> int:
        return -(-self.events // self.batch)

    def anchored(self) -> FleetPlan:
        """This plan with ``start`` fixed: recent decisions, as a live fleet sends them (the server's
        retention keeps 400 days by default)."""
        if self.start is not None:
            return self
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        return dataclasses.replace(
            self, start=_rfc3339(now - dt.timedelta(seconds=self.runs * self.interval_s))
        )


@dataclass(frozen=True)
class BatchRef:
    path: str
    offset: int
    length: int
    events: int


@dataclass
class Corpus:
    """The batches on disk, and what they hold."""

    batches: list[BatchRef]
    events: int
    devices: int
    json_bytes: int
    gzip_bytes: int
    first_reports: int
    changed_reports: int
    generate_s: float
    decide_s: float
    start: str

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "devices": self.devices,
            "batches": len(self.batches),
            "json_bytes_per_event": round(self.json_bytes / max(1, self.events)),
            "gzip_bytes_per_event": round(self.gzip_bytes / max(1, self.events)),
            "first_reports": self.first_reports,
            "changed_reports": self.changed_reports,
            "new_inventory_share": round(
                (self.first_reports + self.changed_reports) / max(1, self.events), 4
            ),
            "changed_share_after_first_run": round(
                self.changed_reports / max(1, self.events - self.first_reports), 4
            ),
            "first_run_at": self.start,
            "generate_seconds": round(self.generate_s, 2),
            "decide_seconds": round(self.decide_s, 2),
        }

    def write_index(self, path: Path) -> Path:
        path.write_text(json.dumps([dataclasses.asdict(b) for b in self.batches]), encoding="utf-8")
        return path


def opa_version() -> str:
    try:
        for line in (REPO / "versions.mk").read_text().splitlines():
            if line.startswith("OPA_VERSION"):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "1.22.4"


#: the revision given to a bundle built without one (the tests' fixture), so that it can be published
UNVERSIONED = "unversioned"


def bundle_revision(raw: bytes) -> str:
    """The revision in a bundle's ``.manifest`` ("" without one)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name.lstrip("/") == ".manifest":
                handle = archive.extractfile(member)
                if handle is not None:
                    return str(json.loads(handle.read()).get("revision", ""))
    return ""


def with_revision(raw: bytes, revision: str) -> bytes:
    """The same bundle with its ``.manifest`` revision replaced (unsigned: a new revision to publish)."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as target,
    ):
        for member in source.getmembers():
            handle = source.extractfile(member)
            content = handle.read() if handle is not None else b""
            if member.name.lstrip("/") == ".manifest":
                manifest = json.loads(content)
                manifest["revision"] = revision
                content = json.dumps(manifest, separators=(",", ":")).encode()
            info = tarfile.TarInfo(member.name)
            info.size, info.mode, info.mtime = len(content), member.mode, member.mtime
            target.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _instant(base: dt.datetime, seconds: float) -> dt.datetime:
    return base + dt.timedelta(seconds=seconds)


def _rfc3339(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _offsets(plan: FleetPlan) -> list[int]:
    rng = random.Random(f"{plan.seed}/offsets")
    return [rng.randrange(plan.interval_s) for _ in range(plan.devices)]


def _order(offsets: Sequence[int]) -> list[int]:
    return sorted(range(len(offsets)), key=lambda d: (offsets[d], d))


def _base(plan: FleetPlan) -> dt.datetime:
    return dt.datetime.fromisoformat((plan.anchored().start or "").replace("Z", "+00:00"))


def decide_first(plan: FleetPlan, bundle: Path) -> list[dict[str, Any]]:
    """The policy's decision for each device's first report at its first instant (the embedded engine)."""
    from bench.micro import embedded_engine

    engine = embedded_engine(bundle)
    base, offsets = _base(plan), _offsets(plan)
    try:
        out = []
        for index in range(plan.devices):
            device = make_device(index, apps=plan.apps, seed=plan.seed, change_every=plan.change_every)
            at = _rfc3339(_instant(base, offsets[index]))
            report = device.report(_rfc3339(_instant(base, offsets[index] - 2)))
            out.append(engine.evaluate({"at": at, "report": report}))
        return out
    finally:
        engine.close()


@dataclass(frozen=True)
class _Job:
    plan: FleetPlan
    results: list[dict[str, Any]]
    revision: str
    first_batch: int
    last_batch: int
    path: str


def _write_batches(job: _Job) -> tuple[list[BatchRef], int, int, int, int]:
    """Batches ``[first_batch, last_batch)`` into ``path``: (refs, json bytes, gzip bytes, first
    reports, changed reports)."""
    plan = job.plan
    base, offsets = _base(plan), _offsets(plan)
    order = _order(offsets)
    devices: list[AndroidDevice] = [
        make_device(i, apps=plan.apps, seed=plan.seed, change_every=plan.change_every)
        for i in range(plan.devices)
    ]
    instances = [
        str(uuid.UUID(int=random.Random(f"opa/{n}").getrandbits(128), version=4))
        for n in range(plan.opa_instances)
    ]
    bundles = {"pyagent": {"revision": job.revision}}
    labels = [{"id": instance, "version": opa_version()} for instance in instances]
    refs: list[BatchRef] = []
    json_bytes = gzip_bytes = first = changed = 0
    with open(job.path, "wb") as out:
        for number in range(job.first_batch, job.last_batch):
            rng = random.Random(f"{plan.seed}/batch/{number}")
            events = []
            for event_index in range(number * plan.batch, min((number + 1) * plan.batch, plan.events)):
                run, index = divmod(event_index, plan.devices)
                device = devices[order[index]]
                if device.advance(run):
                    changed += 1
                first += run == 0
                decided = _instant(base, run * plan.interval_s + offsets[device.index])
                peer = f"10.20.{number % plan.opa_instances}.1:{rng.randrange(40000, 60000)}"
                events.append(
                    {
                        "decision_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                        "labels": labels[number % plan.opa_instances],
                        "bundles": bundles,
                        "path": "pyagent/decision",
                        "input": {
                            "at": _rfc3339(decided),
                            "report": device.report(_rfc3339(_instant(decided, -2))),
                        },
                        # the policy echoes the instant it decided for: the server refuses another
                        "result": {**job.results[device.index], "evaluated_at": _rfc3339(decided)},
                        "requested_by": peer,
                        "req_id": event_index + 1,
                        "timestamp": f"{_rfc3339(decided)[:-1]}.{rng.randrange(10**9):09d}Z",
                        "metrics": {
                            "counter_server_query_cache_hit": 1,
                            "timer_rego_input_parse_ns": rng.randrange(200_000, 900_000),
                            "timer_rego_query_eval_ns": rng.randrange(3_000_000, 9_000_000),
                            "timer_server_handler_ns": rng.randrange(4_000_000, 12_000_000),
                        },
                    }
                )
            raw = orjson.dumps(events)
            packed = gzip.compress(raw, compresslevel=plan.gzip_level, mtime=0)
            refs.append(BatchRef(job.path, out.tell(), len(packed), len(events)))
            out.write(packed)
            json_bytes += len(raw)
            gzip_bytes += len(packed)
    return refs, json_bytes, gzip_bytes, first, changed


def generate(plan: FleetPlan, bundle: Path, workdir: Path, *, workers: int | None = None) -> Corpus:
    """Decide each device once, then write every batch (in ``workers`` processes)."""
    start = time.perf_counter()
    plan = plan.anchored()
    results = decide_first(plan, bundle)
    decided = time.perf_counter()
    revision = bundle_revision(bundle.read_bytes()) or UNVERSIONED
    workers = workers or (1 if plan.events < 5_000 else len(os.sched_getaffinity(0)))
    workers = max(1, min(workers, plan.batches))
    bounds = [plan.batches * k // workers for k in range(workers + 1)]
    jobs = [
        _Job(plan, results, revision, bounds[k], bounds[k + 1], str(workdir / f"batches-{k}.bin"))
        for k in range(workers)
        if bounds[k] < bounds[k + 1]
    ]
    if len(jobs) == 1:
        parts = [_write_batches(jobs[0])]
    else:
        with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(_write_batches, jobs))
    refs = [ref for part in parts for ref in part[0]]
    return Corpus(
        batches=refs,
        events=sum(r.events for r in refs),
        devices=plan.devices,
        json_bytes=sum(p[1] for p in parts),
        gzip_bytes=sum(p[2] for p in parts),
        first_reports=sum(p[3] for p in parts),
        changed_reports=sum(p[4] for p in parts),
        generate_s=time.perf_counter() - start,
        decide_s=decided - start,
        start=plan.start or "",
    )
