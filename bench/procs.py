"""Whole processes: a cold ``pyagent check`` against a cold ``opa eval``, and fleet runs of generated
devices with their throughput and the memory high-water of their whole process tree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.inputs import AT
from bench.measure import RunResult, run_measured, summarise

__all__ = ["cold", "fleet_run", "generate", "help_time"]

_DEVICES = re.compile(r"^(\d+) devices:", re.MULTILINE)


def _timed_run(command: Sequence[str], *, cwd: Path, env: Mapping[str, str], ok: Sequence[int]) -> int:
    start = time.perf_counter_ns()
    done = subprocess.run(
        list(command), cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter_ns() - start
    if done.returncode not in ok:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr.decode()[-1500:]}")
    return elapsed


def cold(
    pyagent: Sequence[str],
    opa: str,
    repo: Path,
    report_path: Path,
    input_path: Path,
    *,
    runs: int,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """``pyagent check REPORT --at ... --engine embedded`` against ``opa eval -d policies/rego -d
    policies/data -i INPUT data.pyagent.decision``: whole processes, alternating, after one untimed
    run of each (which also fills the compiled-module cache)."""
    # Python's bytecode as an installed package has it (pip compiles it at install): written by the
    # untimed first run into a private prefix, even where PYTHONDONTWRITEBYTECODE is set.
    env = {**env, "PYTHONPYCACHEPREFIX": str(report_path.parent / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    check = [*pyagent, "check", str(report_path), "--at", AT, "--engine", "embedded"]
    opa_eval = [opa, "eval", "-d", "policies/rego", "-d", "policies/data", "-i", str(input_path)]
    opa_eval.append("data.pyagent.decision")
    floor = [sys.executable, "-c", _FLOOR]
    for command, ok in ((check, (0, 1)), (opa_eval, (0,)), (floor, (0,))):
        _timed_run(command, cwd=repo, env=env, ok=ok)
    check_ns: list[int] = []
    eval_ns: list[int] = []
    floor_ns: list[int] = []
    for _ in range(runs):
        check_ns.append(_timed_run(check, cwd=repo, env=env, ok=(0, 1)))
        eval_ns.append(_timed_run(opa_eval, cwd=repo, env=env, ok=(0,)))
        floor_ns.append(_timed_run(floor, cwd=repo, env=env, ok=(0,)))
    uncached_env = {**env, "PYAGENT_WASM_CACHE": "0"}
    uncached = [_timed_run(check, cwd=repo, env=uncached_env, ok=(0, 1)) for _ in range(max(1, runs // 5))]
    python = [sys.executable, "-c", "pass"]
    return {
        "check": summarise(check_ns),
        "opa_eval": summarise(eval_ns),
        "check_without_module_cache": summarise(uncached),
        "python_startup": summarise([_timed_run(python, cwd=repo, env=env, ok=(0,)) for _ in range(runs)]),
        "libraries_floor": summarise(floor_ns),
        "libraries_floor_command": f'python -c "{_FLOOR}"',
        "check_imports": import_profile(
            [sys.executable, "-X", "importtime", "-m", "pyagent", *check[len(pyagent) :]], cwd=repo, env=env
        ),
        "check_phases_ms": check_phases(report_path, cwd=repo, env=env),
        "check_command": _shown([Path(pyagent[-1]).name, *check[len(pyagent) :]], report_path, input_path),
        "opa_eval_command": _shown(["opa", *opa_eval[1:]], report_path, input_path),
    }


#: What no ``pyagent check`` on the embedded engine can do without: the interpreter and the three
#: libraries it decides with (command line, report schema, wasm runtime), imported and nothing else.
_FLOOR = "import click, jsonschema_rs, wasmtime"

_PHASES = """
import gc, json, sys, time
t0 = time.perf_counter()
import pyagent.cli
gc.disable()  # as pyagent.cli.main does for a one-shot command
from pyagent.decide import decide
from pyagent.engines.base import EngineSettings
from pyagent.engines.select import build_engine
from pyagent.report.load import load_report
t1 = time.perf_counter()
report = load_report(sys.argv[1])
t2 = time.perf_counter()
engine = build_engine(EngineSettings(engine="embedded"))
t3 = time.perf_counter()
decide(engine, report, at=sys.argv[2])
t4 = time.perf_counter()
print(json.dumps({"import the command line": t1 - t0, "read and validate the report": t2 - t1,
                  "build the engine": t3 - t2, "decide": t4 - t3}))
"""


def check_phases(report_path: Path, *, cwd: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """What a cold check spends after the interpreter has started, phase by phase (median of 3 runs
    of a script doing what ``pyagent check`` does); ``{"error": ...}`` if the internals moved."""
    command = [sys.executable, "-c", _PHASES, str(report_path), AT]
    runs: list[dict[str, float]] = []
    for _ in range(3):
        done = subprocess.run(command, cwd=cwd, env=dict(env), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
        runs.append(json.loads(done.stdout))
    return {name: round(sorted(r[name] for r in runs)[1] * 1000, 1) for name in runs[0]}


def _shown(command: Sequence[str], *paths: Path) -> str:
    names = {str(p): p.name for p in paths}
    return " ".join(names.get(part, part) for part in command)


def import_profile(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], top: int = 12
) -> dict[str, Any]:
    """Where a process's import time goes (``-X importtime``): self time summed by package
    (``pyagent.<subpackage>`` for ours, the top-level name for the others), largest first."""
    done = subprocess.run(list(command), cwd=cwd, env=dict(env), capture_output=True, text=True, check=False)
    groups: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if (
            not line.startswith("import time:")
            or len(parts) != 3
            or not parts[0].split(":")[1].strip().isdigit()
        ):
            continue
        name = parts[2].strip()
        pieces = name.split(".")
        group = ".".join(pieces[:2]) if pieces[0] == "pyagent" else pieces[0]
        groups[group] = groups.get(group, 0) + int(parts[0].split(":")[1])
    ranked = sorted(groups.items(), key=lambda kv: -kv[1])
    return {
        "total_ms": round(sum(groups.values()) / 1000, 1),
        "by_package_ms": {name: round(us / 1000, 1) for name, us in ranked[:top]},
    }


def help_time(pyagent: Sequence[str], repo: Path, env: Mapping[str, str], runs: int) -> dict[str, Any]:
    """``pyagent --help``: the price of importing the command line."""
    command = [*pyagent, "--help"]
    _timed_run(command, cwd=repo, env=env, ok=(0,))
    return summarise([_timed_run(command, cwd=repo, env=env, ok=(0,)) for _ in range(runs)])


def generate(pyagent: Sequence[str], devices: int, seed: int, out: Path, env: Mapping[str, str]) -> float:
    """``pyagent fleet generate``; seconds taken."""
    command = [*pyagent, "fleet", "generate", "--devices", str(devices), "--seed", str(seed), "-o", str(out)]
    return _timed_run(command, cwd=out.parent, env=env, ok=(0,)) / 1e9


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def fleet_run(
    pyagent: Sequence[str],
    inventory: Path,
    devices: int,
    *,
    engine: str,
    env: Mapping[str, str],
    opa_url: str | None = None,
    jobs: int | None = None,
    cap_s: float | None = None,
) -> dict[str, Any]:
    """``pyagent fleet INVENTORY --format json -o /dev/null`` as a subprocess. With ``cap_s``, the
    inventory is streamed to ``pyagent fleet -`` on stdin and the stream is ended after ``cap_s``
    seconds: the devices fed until then are decided, and counted."""
    command = [*pyagent, "fleet", "-" if cap_s else str(inventory), "--at", AT, "--format", "json"]
    command += ["-o", os.devnull, "--engine", engine]
    if opa_url:
        command += ["--opa-url", opa_url]
    if jobs:
        command += ["--jobs", str(jobs)]
    result: RunResult = run_measured(
        command, env=env, feed=_lines(inventory) if cap_s else None, feed_cap_s=cap_s
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"pyagent fleet exited {result.returncode}: {result.stderr[-1500:]}")
    found = _DEVICES.search(result.stderr)
    decided = int(found.group(1)) if found else (result.fed if cap_s else devices)
    return {
        "engine": engine,
        "jobs": jobs or "default",
        "devices": decided,
        "capped": bool(cap_s and decided < devices),
        "wall_s": round(result.wall_s, 3),
        "devices_per_s": round(decided / result.wall_s) if result.wall_s else None,
        "peak_tree_rss_mb": round(result.peak_tree_kb / 1024, 1),
        "peak_process_rss_mb": round(result.peak_process_kb / 1024, 1),
        "processes": result.processes,
    }
