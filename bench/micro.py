"""In-process measurements: one decision through each engine, schema validation, and how the
embedded decision scales with the number of apps and of banned identifiers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.inputs import AT, ban_overlay, banned_id, device_report, policy_input, write_json
from bench.measure import repeat, summarise
from bench.opa import RawClient
from pyagent.decide import decide
from pyagent.engines.base import Engine, EngineSettings
from pyagent.engines.select import build_engine
from pyagent.report.load import parse_report
from pyagent.report.validate import report_validator

__all__ = ["Budget", "embedded_engine", "rest", "scale_apps", "scale_banned", "single", "validate"]


@dataclass(frozen=True)
class Budget:
    """How long each measurement may take, and how many samples it aims for."""

    seconds: float = 3.0
    runs: int = 400
    warmup: int = 20
    rounds: int = 5  # alternating blocks when two things are compared


def embedded_engine(bundle: Path, data_files: Sequence[Path] = ()) -> Engine:
    return build_engine(
        EngineSettings(engine="embedded", bundle=str(bundle), data_files=tuple(str(p) for p in data_files))
    )


def _decider(engine: Engine, report: dict[str, Any]) -> Callable[[], object]:
    def run() -> object:
        return decide(engine, report, at=AT)

    return run


def single(engine: Engine, report: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """One warm decision (``pyagent.decide.decide``) through ``engine``, and the bare ``evaluate``."""
    the_input = policy_input(report)
    half = budget.seconds / 2
    decided = repeat(_decider(engine, report), warmup=budget.warmup, runs=budget.runs, budget_s=half)
    evaluated = repeat(lambda: engine.evaluate(the_input), warmup=5, runs=budget.runs, budget_s=half)
    return {**summarise(decided), "evaluate": summarise(evaluated)}


def rest(url: str, host: str, port: int, report: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """The same decision from a real OPA server: a bare keep-alive client, and pyagent's ``opa`` engine,
    measured in alternating blocks so that both see the same machine."""
    engine = build_engine(EngineSettings(engine="opa", opa_url=url))
    raw = RawClient(host, port)
    the_input = policy_input(report)
    raw_samples: list[int] = []
    agent_samples: list[int] = []
    evaluate_samples: list[int] = []
    per_block = max(5, budget.runs // budget.rounds)
    block_budget = budget.seconds / budget.rounds / 3
    try:
        for _ in range(budget.warmup):
            raw.decide(the_input)
            decide(engine, report, at=AT)
        for _ in range(budget.rounds):
            for samples, fn in (
                (raw_samples, lambda: raw.decide(the_input)),
                (agent_samples, _decider(engine, report)),
                (evaluate_samples, lambda: engine.evaluate(the_input)),
            ):
                samples += repeat(fn, warmup=0, runs=per_block, budget_s=block_budget, min_runs=3)
        agree = raw.decide(the_input) == engine.evaluate(the_input)
    finally:
        raw.close()
        engine.close()
    return {
        "raw": summarise(raw_samples),
        "agent": {**summarise(agent_samples), "evaluate": summarise(evaluate_samples)},
        "agent_matches_raw": agree,
    }


def validate(report: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Schema validation of the report (it is valid, so the fast path only), called as the agent calls it:
    ``parse_report`` passes ``nul_free`` when the JSON text has no ``\\u0000`` escape. Also measured:
    the call with default arguments, and ``parse_report`` (bytes to validated report) as a whole."""
    validator = report_validator()
    text = json.dumps(report)
    nul_free = "\\u0000" not in text
    if not validator.validate(report, nul_free=nul_free).valid:
        raise RuntimeError("the benchmark report is not schema-valid")
    runs, half = budget.runs * 2, budget.seconds / 4
    agent = repeat(
        lambda: validator.validate(report, nul_free=nul_free), warmup=budget.warmup, runs=runs, budget_s=half
    )
    default = repeat(lambda: validator.validate(report), warmup=budget.warmup, runs=runs, budget_s=half)
    raw = text.encode()
    parsed = repeat(lambda: parse_report(raw, "report.json"), warmup=budget.warmup, runs=runs, budget_s=half)
    return {
        **summarise(agent),
        "nul_free": nul_free,
        "default_args": summarise(default),
        "parse_report": summarise(parsed),
    }


def scale_apps(bundle: Path, sizes: Sequence[int], budget: Budget) -> list[dict[str, Any]]:
    """The embedded decision for devices of ``sizes`` apps."""
    engine = embedded_engine(bundle)
    out = []
    try:
        for size in sizes:
            report = device_report(size)
            stats = summarise(_scaled(_decider(engine, report), budget))
            out.append({"apps": size, **stats, "us_per_app": _per_unit(stats, size)})
    finally:
        engine.close()
    return out


def scale_banned(bundle: Path, sizes: Sequence[int], workdir: Path, budget: Budget) -> list[dict[str, Any]]:
    """The embedded decision for the 200-app device when a rule of its organisation uses a ban of
    ``sizes`` Android identifiers (a ``--data`` overlay); one of them is installed on the device."""
    report = device_report(200, banned_extra=banned_id(0))
    out = []
    for size in sizes:
        overlay = write_json(workdir / f"ban-overlay-{size}.json", ban_overlay(size))
        engine = embedded_engine(bundle, [overlay])
        try:
            decision = decide(engine, report, at=AT)
            hits = [v for v in decision["violations"] if v["ban"] == "bench-ban"]
            stats = summarise(_scaled(_decider(engine, report), budget))
        finally:
            engine.close()
        out.append({"banned_ids": size, **stats, "overlay": overlay.name, "bench_ban_violations": len(hits)})
    return out


def _scaled(fn: Callable[[], object], budget: Budget) -> list[int]:
    return repeat(fn, warmup=max(2, budget.warmup // 4), runs=budget.runs, budget_s=budget.seconds / 2)


def _per_unit(stats: dict[str, Any], units: int) -> float | None:
    median = stats.get("median_ms")
    return round(median * 1000 / units, 3) if isinstance(median, float) and units else None
