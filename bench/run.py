"""``make bench`` (``python -m bench.run``): pyagent measured side by side with OPA itself, in one run,
on the same policy and the same inputs. Writes ``bench/results.json`` and ``docs/benchmarks.md``.

``--smoke`` runs every step at toy sizes (seconds, for the test suite); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench import fleet_views, ingest, micro, opa_index, procs
from bench.inputs import device_report, policy_input, write_json
from bench.markdown import markdown
from bench.measure import loadavg, machine
from bench.opa import opa_bench_ns, opa_server
from bench.report import goals

REPO = Path(__file__).resolve().parents[1]
POLICY_DIRS = (REPO / "policies" / "rego", REPO / "policies" / "data")
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """What to measure, and how much."""

    mode: str
    budget: micro.Budget
    apps: int = 200
    opa_bench_count: int = 3
    banned_opa_bench: bool = True
    cold_runs: int = 10
    scale_apps: Sequence[int] = (10, 200, 2_000, 10_000)
    scale_banned: Sequence[int] = (10, 1_000, 10_000)
    fleet_sizes: Sequence[int] = (10_000, 100_000)
    fleet_repeats: dict[int, int] = field(default_factory=lambda: {10_000: 3, 100_000: 1})
    opa_fleet_cap_s: float | None = 60.0
    seed: int = 7
    server: ingest.IngestPlan = ingest.FULL
    views: fleet_views.ViewsPlan = fleet_views.FULL
    index: opa_index.IndexPlan = opa_index.FULL


FULL = Plan(mode="full", budget=micro.Budget())
SMOKE = Plan(
    mode="smoke",
    budget=micro.Budget(seconds=0.3, runs=20, warmup=2, rounds=2),
    opa_bench_count=1,
    banned_opa_bench=False,
    cold_runs=1,
    scale_apps=(10, 50),
    scale_banned=(10, 100),
    fleet_sizes=(20, 40),
    fleet_repeats={},
    opa_fleet_cap_s=None,
    server=ingest.SMOKE,
    views=fleet_views.SMOKE,
    index=opa_index.SMOKE,
)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _step(results: dict[str, Any], name: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    _log(f"{name} ...")
    value = fn()
    took = time.perf_counter() - start
    results.setdefault("step_seconds", {})[name] = round(took, 2)
    _log(f"{name}: {took:.1f} s")
    return value


def find_opa() -> str:
    configured = os.environ.get("PYAGENT_OPA")
    for candidate in (configured, str(REPO / ".tools" / "bin" / "opa"), shutil.which("opa")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("bench: no opa binary (set PYAGENT_OPA or run `make opa`)")


def find_bundle() -> Path:
    bundle = Path(os.environ.get("PYAGENT_BUNDLE") or REPO / "build" / "bundle.tar.gz")
    if not bundle.is_file():
        raise SystemExit(f"bench: {bundle}: no compiled policy (run `make policy`)")
    return bundle


def pyagent_command() -> list[str]:
    script = Path(sys.executable).with_name("pyagent")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pyagent"]


def measure(plan: Plan, opa: str, bundle: Path, workdir: Path) -> dict[str, Any]:
    """Every measurement of the plan, as one results document."""
    env = {**os.environ, "PYAGENT_BUNDLE": str(bundle), "PYAGENT_OPA": opa}
    env.pop("PYAGENT_OPA_URL", None)
    pyagent = pyagent_command()
    report = device_report(plan.apps)
    report_path = write_json(workdir / "report.json", report)
    input_path = write_json(workdir / "input.json", policy_input(report))
    results: dict[str, Any] = {
        "mode": plan.mode,
        "generated_at": _now(),
        "machine": machine(opa),
        "load_start": loadavg(),
        "device": {"apps": len(report["apps"]), "platform": "android", "organization": "eu-commission"},
    }
    budget = plan.budget
    bench = _step(
        results, "opa bench", lambda: opa_bench_ns(opa, input_path, POLICY_DIRS, count=plan.opa_bench_count)
    )
    results["opa_bench_ns"] = bench["ns_per_op"]
    results["opa_bench"] = bench
    embedded = micro.embedded_engine(bundle)
    try:
        results["embedded_ms"] = _step(results, "embedded", lambda: micro.single(embedded, report, budget))
        # beside the decision it is compared with, before the fleet runs load the machine
        results["validate_ms"] = _step(results, "validate", lambda: micro.validate(report, budget))
        with opa_server(opa, POLICY_DIRS, workdir) as server:
            rest = _step(
                results, "rest", lambda: micro.rest(server.url, server.host, server.port, report, budget)
            )
            results["rest_raw_ms"], results["rest_agent_ms"] = rest["raw"], rest["agent"]
            results["rest_agent_matches_raw"] = rest["agent_matches_raw"]
            results["embedded_matches_opa"] = embedded.evaluate(policy_input(report)) == _opa_answer(
                server, report
            )
            results["fleet"] = _step(
                results, "fleet", lambda: _fleet(plan, pyagent, env, workdir, server.url)
            )
    finally:
        embedded.close()
    cold = _step(
        results,
        "cold",
        lambda: procs.cold(pyagent, opa, REPO, report_path, input_path, runs=plan.cold_runs, env=env),
    )
    results["cold_check_ms"], results["cold_opa_eval_ms"] = cold["check"], cold["opa_eval"]
    results["cold"] = cold
    results["help_ms"] = procs.help_time(pyagent, REPO, env, runs=max(1, plan.cold_runs // 2))
    results["scale"] = {
        "apps": _step(results, "scale apps", lambda: micro.scale_apps(bundle, plan.scale_apps, budget)),
        "banned_ids": _step(
            results,
            "scale banned ids",
            lambda: micro.scale_banned(bundle, plan.scale_banned, workdir, budget),
        ),
    }
    if plan.banned_opa_bench:
        results["scale"]["banned_ids_opa_bench_ns"] = _step(
            results, "opa bench banned ids", lambda: _banned_opa_bench(plan, opa, workdir)
        )
    results["opa_index"] = _step(
        results, "opa server with the ban index", lambda: _opa_index(plan, opa, bundle, workdir)
    )
    results["server_ingest"] = _step(
        results, "server ingest", lambda: ingest.measure(plan.server, bundle, workdir)
    )
    results["server_views"] = _step(results, "server fleet views", lambda: fleet_views.measure(plan.views))
    results["load_end"] = loadavg()
    results["ratios"] = goals(results)
    return results


def _opa_index(plan: Plan, opa: str, bundle: Path, workdir: Path) -> dict[str, Any]:
    section = opa_index.measure(plan.index, opa, bundle, workdir, log=_log)
    section["generated_at"] = _now()
    return section


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def measure_ingest_only(plan: Plan, bundle: Path, workdir: Path) -> dict[str, Any]:
    """``--only ingest``: the server ingest section, as a key to merge into the results."""
    out: dict[str, Any] = {}
    out["server_ingest"] = _step(out, "server ingest", lambda: ingest.measure(plan.server, bundle, workdir))
    out["server_ingest"]["generated_at"] = _now()
    return out


def measure_views_only(plan: Plan) -> dict[str, Any]:
    """``--only fleet-views``: the server's fleet views section, as a key to merge into the results."""
    out: dict[str, Any] = {}
    out["server_views"] = _step(out, "server fleet views", lambda: fleet_views.measure(plan.views))
    out["server_views"]["generated_at"] = _now()
    return out


def measure_opa_only(plan: Plan, opa: str, bundle: Path, workdir: Path) -> dict[str, Any]:
    """``--only opa``: the OPA-server section and the cold start, as keys to merge into the results."""
    env = {**os.environ, "PYAGENT_BUNDLE": str(bundle), "PYAGENT_OPA": opa}
    env.pop("PYAGENT_OPA_URL", None)
    report = device_report(plan.apps)
    report_path = write_json(workdir / "report.json", report)
    input_path = write_json(workdir / "input.json", policy_input(report))
    out: dict[str, Any] = {}
    out["opa_index"] = _step(
        out, "opa server with the ban index", lambda: _opa_index(plan, opa, bundle, workdir)
    )
    cold = _step(
        out,
        "cold",
        lambda: procs.cold(
            pyagent_command(), opa, REPO, report_path, input_path, runs=plan.cold_runs, env=env
        ),
    )
    out["cold_check_ms"], out["cold_opa_eval_ms"], out["cold"] = cold["check"], cold["opa_eval"], cold
    out["cold"]["generated_at"] = out["opa_index"]["generated_at"]
    out.pop("step_seconds", None)
    return out


def _opa_answer(server: Any, report: dict[str, Any]) -> Any:
    from bench.opa import RawClient

    client = RawClient(server.host, server.port)
    try:
        return client.decide(policy_input(report))
    finally:
        client.close()


def _banned_opa_bench(plan: Plan, opa: str, workdir: Path) -> dict[str, int]:
    """OPA's own evaluator on the smallest and largest ban, to tell the policy's cost from the engine's."""
    from bench.inputs import ban_overlay, banned_id

    input_path = write_json(
        workdir / "input-banned.json", policy_input(device_report(200, banned_extra=banned_id(0)))
    )
    out = {}
    for size in (plan.scale_banned[0], plan.scale_banned[-1]):
        overlay = write_json(workdir / f"ban-overlay-{size}.json", ban_overlay(size))
        measured = opa_bench_ns(opa, input_path, [*POLICY_DIRS, overlay], count=1)
        out[str(size)] = int(measured["ns_per_op"])
    return out


def _fleet(
    plan: Plan, pyagent: list[str], env: dict[str, str], workdir: Path, opa_url: str
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    generated: dict[str, float] = {}
    for size in plan.fleet_sizes:
        inventory = workdir / f"fleet-{size}.jsonl"
        generated[str(size)] = round(procs.generate(pyagent, size, plan.seed, inventory, env), 2)
        for _ in range(plan.fleet_repeats.get(size, 1)):
            runs.append(procs.fleet_run(pyagent, inventory, size, engine="embedded", env=env))
            _log(f"fleet embedded {size}: {runs[-1]['devices_per_s']} devices/s")
        if size == plan.fleet_sizes[0]:
            runs.append(procs.fleet_run(pyagent, inventory, size, engine="embedded", env=env, jobs=1))
        cap = plan.opa_fleet_cap_s if size > plan.fleet_sizes[0] else None
        runs.append(
            procs.fleet_run(pyagent, inventory, size, engine="opa", env=env, opa_url=opa_url, cap_s=cap)
        )
        _log(f"fleet opa {size}: {runs[-1]['devices_per_s']} devices/s ({runs[-1]['devices']} devices)")
        inventory.unlink()
    return {"generate_seconds": generated, "runs": runs, "opa_cap_s": plan.opa_fleet_cap_s}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks that the bench runs")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument(
        "--only",
        choices=["opa", "ingest", "fleet-views"],
        default=None,
        help="run one section (opa: the OPA server with the ban index, throughput, cold start; ingest: "
        "the server's decision-log ingest; fleet-views: the server's fleet views at scale) and keep "
        "every other figure of --json as it is",
    )
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    opa, bundle = find_opa(), find_bundle()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pyagent-bench-") as work:
        if args.only:
            only: dict[str, Callable[[], dict[str, Any]]] = {
                "opa": lambda: measure_opa_only(plan, opa, bundle, Path(work)),
                "ingest": lambda: measure_ingest_only(plan, bundle, Path(work)),
                "fleet-views": lambda: measure_views_only(plan),
            }
            section = only[args.only]()
            results = json.loads(args.json.read_text(encoding="utf-8"))
            steps = {**results.get("step_seconds", {}), **section.pop("step_seconds", {})}
            results.update(section, step_seconds=steps)
            results["ratios"] = goals(results)
        else:
            results = measure(plan, opa, bundle, Path(work))
    if not args.only:
        results["total_seconds"] = round(time.perf_counter() - start, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(markdown(results), encoding="utf-8")
    for goal in results["ratios"]:
        mark = "PASS" if goal["pass"] else "FAIL"
        print(f"{mark}  {goal['goal']}: {goal['value']} (target {goal['op']} {goal['target']})")
    _log(f"done in {results['total_seconds']} s: {args.json}, {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
