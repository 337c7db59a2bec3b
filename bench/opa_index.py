"""The OPA-server path with the ban index (``data.pyagent_index``, ``pyagent/policy/index.py``):
``opa bench`` and the OPA server's own ``timer_rego_query_eval_ns`` side by side, for the 200-app
phone with the shipped data and with 100, 1,000 and 10,000 banned identifiers consulted by a rule of
its organisation; the embedded engine on the same data; and agent-through-REST throughput
(``bench/opa_throughput.py``).

``python -m bench.run --only opa`` runs this section (and the cold start) alone."""

from __future__ import annotations

import http.client
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import opa_throughput
from bench.inputs import ban_overlay, banned_id, device_report, policy_input, write_json
from bench.opa import DATA_PATH, opa_bench_ns, opa_server
from pyagent.engines.encode import encode_json
from pyagent.policy import index
from pyagent.policy.data import load_overlay, merge

__all__ = ["FULL", "SMOKE", "IndexPlan", "measure"]

REPO = Path(__file__).resolve().parents[1]
POLICY_DIRS = (REPO / "policies" / "rego", REPO / "policies" / "data")


@dataclass(frozen=True)
class IndexPlan:
    banned: Sequence[int] = (100, 1_000, 10_000)
    server_samples: int = 300
    warmup: int = 300  # a fresh OPA's first few hundred evaluations are slower (Go's heap settles)
    server_rounds: int = 3  # OPA servers started in turn per case, their samples pooled
    opa_bench_count: int = 3
    embedded_samples: int = 400
    clients: Sequence[int] = (1, 8, 32)
    throughput_s: float = 8.0
    rounds: int = 2


FULL = IndexPlan()
SMOKE = IndexPlan(
    banned=(100,),
    server_samples=20,
    warmup=2,
    server_rounds=2,
    opa_bench_count=1,
    embedded_samples=20,
    clients=(1, 8),
    throughput_s=0.5,
    rounds=1,
)


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4)


def server_eval(
    host: str, port: int, policy_input: dict[str, Any], *, samples: int, warmup: int
) -> dict[str, Any]:
    """``POST /v1/data/pyagent/decision?metrics=true``: the server's own ``timer_rego_query_eval_ns``
    (median), and the client's round trip, over ``samples`` requests on one keep-alive connection."""
    sampled = _sample(host, port, policy_input, samples=samples, warmup=warmup)
    return {**_summary(sampled), "result": sampled["result"]}


def _sample(
    host: str, port: int, policy_input: dict[str, Any], *, samples: int, warmup: int
) -> dict[str, Any]:
    """The ``samples`` requests after ``warmup`` ones: each one's eval and input-parse timers and round
    trip, in ns, and the last result."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    body = json.dumps({"input": policy_input}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    evals: list[int] = []
    parses: list[int] = []
    trips: list[int] = []
    result: Any = None
    try:
        for n in range(warmup + samples):
            start = time.perf_counter_ns()
            connection.request("POST", f"{DATA_PATH}?metrics=true", body=body, headers=headers)
            response = connection.getresponse()
            payload = json.loads(response.read())
            took = time.perf_counter_ns() - start
            if response.status != 200:
                raise RuntimeError(f"OPA answered HTTP {response.status}: {payload}")
            result = payload["result"]
            if n >= warmup:
                evals.append(int(payload["metrics"]["timer_rego_query_eval_ns"]))
                parses.append(int(payload["metrics"]["timer_rego_input_parse_ns"]))
                trips.append(took)
    finally:
        connection.close()
    return {"evals": evals, "parses": parses, "trips": trips, "result": result}


def _summary(sampled: dict[str, Any]) -> dict[str, Any]:
    evals, parses, trips = sampled["evals"], sampled["parses"], sampled["trips"]
    return {
        "eval_median_ms": _median([e / 1e6 for e in evals]),
        "eval_p99_ms": round(sorted(evals)[int(0.99 * (len(evals) - 1))] / 1e6, 4),
        "input_parse_median_ms": _median([p / 1e6 for p in parses]),  # timer_rego_input_parse_ns
        "round_trip_median_ms": _median([t / 1e6 for t in trips]),
        "n": len(evals),
    }


def pooled_server_eval(
    opa: str, paths: Sequence[Path], workdir: Path, policy_input: dict[str, Any], plan: IndexPlan
) -> dict[str, Any]:
    """:func:`server_eval` on ``plan.server_rounds`` OPA servers started in turn, their samples pooled:
    one OPA's median moves by a tenth or more from one start to the next on this 2-core VM (its heap, its
    collector's pacing), so the figure is not one process's. Each server's own median is kept."""
    rounds: list[dict[str, Any]] = []
    for _ in range(plan.server_rounds):
        with opa_server(opa, paths, workdir) as server:
            sampled = _sample(
                server.host, server.port, policy_input, samples=plan.server_samples, warmup=plan.warmup
            )
        rounds.append(sampled)
    if any(r["result"] != rounds[0]["result"] for r in rounds):
        raise RuntimeError("OPA servers of the same policy and input decided differently")
    pooled = {key: [x for r in rounds for x in r[key]] for key in ("evals", "parses", "trips")}
    return {
        **_summary(pooled),
        "server_medians_ms": [_median([e / 1e6 for e in r["evals"]]) for r in rounds],
        "result": rounds[0]["result"],
    }


def _embedded(
    bundle: Path, overlay: Path | None, policy_input: dict[str, Any], samples: int
) -> dict[str, Any]:
    from bench.measure import repeat, summarise
    from bench.micro import embedded_engine

    engine = embedded_engine(bundle, [overlay] if overlay else [])
    report = policy_input["report"]
    one_app = {**policy_input, "report": {**report, "apps": report["apps"][:1]}}
    try:
        times = repeat(lambda: engine.evaluate(policy_input), warmup=20, runs=samples, budget_s=10.0)
        fixed = repeat(lambda: engine.evaluate(one_app), warmup=20, runs=samples, budget_s=5.0)
        return {
            **summarise(times),
            "one_app": summarise(fixed),  # the same device with its first app only: the cost per call
            "input_bytes": len(encode_json(policy_input, "input")),  # what the engine hands the module
            "result": engine.evaluate(policy_input),
        }
    finally:
        engine.close()


def _case(workdir: Path, size: int | None) -> tuple[str, dict[str, Any], Path | None, Path]:
    """(label, policy input, overlay or None, index root) for the shipped data or a ban of ``size``."""
    base = index.data_of_dirs(list(POLICY_DIRS))
    if size is None:
        report = device_report(200)
        overlay, data, label = None, base, "shipped"
    else:
        report = device_report(200, banned_extra=banned_id(0))
        overlay = write_json(workdir / f"ban-{size}.json", ban_overlay(size))
        data, label = merge(base, [load_overlay(overlay)]), str(size)
    root = index.write_root(data, workdir / f"index-{label}")
    return label, policy_input(report), overlay, root


def measure(plan: IndexPlan, opa: str, bundle: Path, workdir: Path, log: Any = print) -> dict[str, Any]:
    """Every figure of this section, as one results document."""
    cases: list[dict[str, Any]] = []
    for size in [None, *plan.banned]:
        label, the_input, overlay, root = _case(workdir, size)
        input_path = write_json(workdir / f"input-{label}.json", the_input)
        paths = [*POLICY_DIRS, *([overlay] if overlay else []), root]
        row: dict[str, Any] = {"data": label, "banned_ids": size or 0}
        row["opa_bench_ns"] = opa_bench_ns(opa, input_path, paths, count=plan.opa_bench_count)["ns_per_op"]
        served = pooled_server_eval(opa, paths, workdir, the_input, plan)
        embedded = _embedded(bundle, overlay, the_input, plan.embedded_samples)
        row["server"] = {k: v for k, v in served.items() if k != "result"}
        row["embedded"] = {k: v for k, v in embedded.items() if k != "result"}
        row["same_decision"] = served["result"] == embedded["result"]
        log(
            f"opa index {label}: server eval {row['server']['eval_median_ms']} ms, "
            f"embedded {row['embedded']['median_ms']} ms"
        )
        cases.append(row)
    _, shipped_input, _, shipped_root = _case(workdir, None)
    input_path = write_json(workdir / "input-raw.json", shipped_input)
    raw = {"opa_bench_ns": opa_bench_ns(opa, input_path, POLICY_DIRS, count=1)["ns_per_op"]}
    with opa_server(opa, POLICY_DIRS, workdir) as server:
        served = server_eval(
            server.host, server.port, shipped_input, samples=plan.server_samples // 3, warmup=5
        )
        raw["server"] = {k: v for k, v in served.items() if k != "result"}
    report_path = write_json(workdir / "report-200.json", shipped_input["report"])
    throughput = opa_throughput.measure(
        opa,
        [*POLICY_DIRS, shipped_root],
        report_path,
        workdir,
        clients=plan.clients,
        seconds=plan.throughput_s,
        rounds=plan.rounds,
        log=log,
    )
    return {
        "cases": cases,
        "raw_folders": raw,
        **throughput,
        "server_warmup": plan.warmup,
        "server_rounds": plan.server_rounds,
    }
